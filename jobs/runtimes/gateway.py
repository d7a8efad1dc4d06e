"""How carve talks to the JVM through py4j: the classes PySpark looks up on every call, looked
up once; threads that run Spark work in the session.

Every PySpark column function (`F.col`, `F.when`, ...) asks py4j for the class `functions` by
its bare name, and every list of columns for `PythonUtils`: a round trip each, in which py4j
tries the packages PySpark imported (api.java, api.python, ml.python, ...) until one holds the
class, and each miss is a search of Spark's 250 jars. Building the demo's items makes about
2,300 such lookups. py4j's JVM view asks the JVM only for names it does not hold as attributes,
so the classes are set on it once here; a class never moves while its JVM runs. Measured on a
sampled plan of the demo: building the items took 3.0 s before, 1.9 s after.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import SparkSession

LOOKED_UP = ("functions", "PythonUtils", "PythonSQLUtils", "Column", "SparkSession")


def remember_classes(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    for name in LOOKED_UP:
        if name not in vars(jvm):
            setattr(jvm, name, getattr(jvm, name))


def session_threads(spark: SparkSession, workers: int, name: str) -> ThreadPoolExecutor:
    """Threads that run Spark work in `spark`. Each Python thread talks to its own JVM thread
    (py4j's pinned threads), and a JVM thread with no active session analyses with Spark's default
    settings, not the session's: case-insensitive column names, for one, so that a table with
    both `name` and `Name` fails. Each worker makes `spark` its JVM thread's active session first."""
    def activate() -> None:
        spark.sparkContext._jvm.SparkSession.setActiveSession(spark._jsparkSession)

    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=activate)
