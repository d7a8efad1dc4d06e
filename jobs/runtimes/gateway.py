"""How carve talks to the JVM through py4j: the classes PySpark looks up on every call, looked
up once; threads that run Spark work in the session.

Every PySpark column function (`F.col`, `F.when`, ...) asks py4j for the class `functions` by
its bare name, then for the method on it, then calls it: three round trips, and in the first py4j
tries the packages PySpark imported (api.java, api.python, ml.python, ...) until one holds the
class, each miss a search of Spark's 250 jars. Building the demo's items made about 2,300 such
calls. py4j asks the JVM only for names its objects do not hold as attributes, so the classes
are set on the JVM view once, as classes that keep the methods they looked up; neither moves
while the JVM runs. Measured on a sampled plan of the demo: building the items took 3.0 s
before, 1.9 s with the classes kept, and 5,300 instead of 7,300 round trips with their methods.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from py4j.java_gateway import JavaClass, JavaMember
from pyspark.sql import SparkSession

LOOKED_UP = ("functions", "PythonUtils", "PythonSQLUtils", "Column", "SparkSession")


class _RememberingClass(JavaClass):
    """A JVM class that keeps its static methods once looked up: `F.lit` asks py4j for the method
    `lit` of `functions` before calling it, a second round trip per call otherwise."""

    def __getattr__(self, name: str) -> Any:
        member = super().__getattr__(name)
        if isinstance(member, JavaMember):
            setattr(self, name, member)
        return member


def remember_classes(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    for name in LOOKED_UP:
        if name not in vars(jvm):
            found = getattr(jvm, name)
            setattr(jvm, name, _RememberingClass(found._fqn, found._gateway_client))


def keep_java_objects(spark: SparkSession) -> None:
    """Stop telling the JVM about each Java object Python drops. py4j otherwise sends one round
    trip per dropped object, from a thread of its own, so the JVM can release it: building the
    demo's items drops some 7,000 (every intermediate column), as many round trips again as the
    building made, each needing the interpreter and the JVM while both are busy. For a JVM that
    lives for seconds of work (a short session, which ends with the command) the objects are
    freed when it exits; a long one (a run, a sync that follows) keeps releasing them."""
    spark.sparkContext._gateway._gateway_client.gateway_property.enable_memory_management = False


def session_threads(spark: SparkSession, workers: int, name: str) -> ThreadPoolExecutor:
    """Threads that run Spark work in `spark`. Each Python thread talks to its own JVM thread
    (py4j's pinned threads), and a JVM thread with no active session analyses with Spark's default
    settings, not the session's: case-insensitive column names, for one, so that a table with
    both `name` and `Name` fails. Each worker makes `spark` its JVM thread's active session first."""
    def activate() -> None:
        spark.sparkContext._jvm.SparkSession.setActiveSession(spark._jsparkSession)

    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=activate)
