"""The local runtime: PySpark local[*,4] with the JDBC driver jars and UTC everywhere; no Glue services."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import DataFrame, SparkSession

from jobs.runtimes.class_archive import archive_path, finish_at_exit, java_options
from jobs.runtimes.gateway import remember_classes
from jobs.runtimes.jvm import ensure_jar
from jobs.sources.connections import Connection, SourceCredentials
from transforms.errors import SinkError

LOG_CONFIG = Path(__file__).with_name("log4j2.properties")

# Debian's libpostgresql-jdbc-java and libmariadb-java put their jars here.
DEFAULT_JAR_GLOBS = (
    "/usr/share/java/postgresql.jar",
    "/usr/share/java/mariadb-java-client.jar",
)


def jdbc_jars() -> list[str]:
    """The driver jars to put on the classpath: CARVE_JDBC_JARS (colon separated) or Debian's."""
    configured = os.environ.get("CARVE_JDBC_JARS")
    patterns = configured.split(":") if configured else DEFAULT_JAR_GLOBS
    return [path for pattern in patterns for path in sorted(glob.glob(pattern))]


def build_local_spark(
    app_name: str = "carve",
    master: str | None = None,
    shuffle_partitions: int | None = None,
    short: bool = False,
) -> SparkSession:
    """The local session. `short`: seconds of work on little data (a sampled plan, validate,
    scaffold), where the JVM's warm-up is most of the time: HotSpot then compiles with C1 only,
    which starts sooner and loses only on long computations, and collects garbage with the
    parallel collector, which keeps no concurrent threads busy beside the work (a sampled plan
    of the demo about 0.3 s sooner on two cores)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # The Python workers run carve's own interpreter (its virtual environment), not whatever
    # `python3` is first on PATH, which may lack carve's packages or carve itself. PySpark reads
    # only this variable for local workers (spark.pyspark.python is spark-submit's).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    jars = [*jdbc_jars(), str(ensure_jar())]  # the drivers and carve's Java functions
    # local[*,4]: a failed task is retried up to 4 times, as on a cluster (the writes are idempotent).
    master = master or os.environ.get("CARVE_SPARK_MASTER", "local[*,4]")
    # The JVM and the session both in UTC: timestamps convert the same on every machine.
    java_opts = f"-Duser.timezone=UTC -Dfile.encoding=UTF-8 -Dlog4j.configurationFile={LOG_CONFIG}"
    # Only the JVM this call launches takes the archive's options (a running one keeps its own).
    archive = archive_path(jars) if SparkContext._gateway is None else None
    driver_opts = " ".join([java_opts, *(["-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC"] if short else []),
                            java_options(archive)]).strip()
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        # Local Spark talks to itself over loopback only, never the machine's other interfaces.
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # Source identifiers are case-sensitive (a table may have both `name` and `Name`).
        .config("spark.sql.caseSensitive", "true")
        .config("spark.driver.extraJavaOptions", driver_opts)
        .config("spark.executor.extraJavaOptions", java_opts)
        .config("spark.driver.memory", os.environ.get("CARVE_DRIVER_MEMORY", "4g"))
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions or 8))
        .config("spark.sql.adaptive.enabled", "true")
        # Items are wide projections; a generated method over 8,000 bytes of bytecode is never
        # JIT-compiled by HotSpot and runs interpreted, ten times slower. Past that size Spark
        # falls back to per-expression code, which is compiled.
        .config("spark.sql.codegen.hugeMethodLimit", "8000")
        .config("spark.python.worker.reuse", "true")
    )
    # extraClassPath puts the jars on the system class path, where py4j metadata connections
    # (jobs.sources.jdbc) and function registration find them too; spark.jars ships them to executors.
    builder = builder.config("spark.jars", ",".join(jars)).config("spark.driver.extraClassPath", ":".join(jars))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    remember_classes(spark)
    finish_at_exit(spark, archive)
    return spark


class LocalRuntime:
    """local[*] PySpark with the JDBC jars; no Glue services."""

    name = "local PySpark"

    def __init__(self, credentials: SourceCredentials | None = None) -> None:
        self.credentials = credentials or SourceCredentials()

    def spark(self, app_name: str, short: bool = False) -> SparkSession:
        return build_local_spark(app_name, short=short)

    def connection(self, name: str) -> Connection:
        return self.credentials.connection(name)

    def write_dynamodb(self, frame: DataFrame, connection_options: Mapping[str, str],
                       endpoint_url: str | None = None) -> None:
        raise SinkError(
            "the glue-connector sink needs AWS Glue's GlueContext (the Glue jars), which plain PySpark does not "
            "have: run the job on AWS Glue, or use the carve sink (the default)"
        )

    def commit(self) -> None:
        pass
