"""The local runtime: PySpark local[*,4] with the JDBC driver jars and UTC everywhere; no Glue services."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pyspark import SparkConf, SparkContext
from pyspark.sql import DataFrame, SparkSession

from jobs.runtimes.class_archive import archive_path, discard_at_exit, finish_at_exit, java_options
from jobs.runtimes.gateway import keep_java_objects, remember_classes
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


@dataclass(frozen=True)
class LocalSettings:
    """What a local session is built with. The JVM's own settings (its options, class path and
    memory) take effect only when the JVM is launched, so launching and building take the same."""
    config: dict[str, str]
    archive: Path | None  # the class archive the launched JVM maps or writes (None: it writes none)
    short: bool  # a JVM launched from these settings runs seconds of work (local_settings)


def local_settings(
    app_name: str = "carve",
    master: str | None = None,
    shuffle_partitions: int | None = None,
    short: bool = False,
) -> LocalSettings:
    """`short`: seconds of work on little data (a sampled plan, validate, scaffold), where the
    JVM's warm-up is most of the time: HotSpot then compiles with C1 only, which starts sooner
    and loses only on long computations, and collects garbage with the parallel collector, which
    keeps no concurrent threads busy beside the work (a sampled plan of the demo about 0.3 s
    sooner on two cores). Such a JVM also keeps the objects Python is done with (see
    jobs.runtimes.gateway.keep_java_objects)."""
    jars = [*jdbc_jars(), str(ensure_jar())]  # the drivers and carve's Java functions
    # local[*,4]: a failed task is retried up to 4 times, as on a cluster (the writes are idempotent).
    master = master or os.environ.get("CARVE_SPARK_MASTER", "local[*,4]")
    # The JVM and the session both in UTC: timestamps convert the same on every machine.
    java_opts = f"-Duser.timezone=UTC -Dfile.encoding=UTF-8 -Dlog4j.configurationFile={LOG_CONFIG}"
    # Only a JVM launched from these settings takes the archive's options (a running one keeps its own).
    launches = SparkContext._gateway is None
    archive = archive_path(jars) if launches else None
    driver_opts = " ".join([java_opts, *(["-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC"] if short else []),
                            java_options(archive)]).strip()
    config = {
        "spark.app.name": app_name,
        "spark.master": master,
        # Local Spark talks to itself over loopback only, never the machine's other interfaces.
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # Source identifiers are case-sensitive (a table may have both `name` and `Name`).
        "spark.sql.caseSensitive": "true",
        "spark.driver.extraJavaOptions": driver_opts,
        "spark.executor.extraJavaOptions": java_opts,
        "spark.driver.memory": os.environ.get("CARVE_DRIVER_MEMORY", "4g"),
        "spark.sql.shuffle.partitions": str(shuffle_partitions or 8),
        "spark.sql.adaptive.enabled": "true",
        # Items are wide projections; a generated method over 8,000 bytes of bytecode is never
        # JIT-compiled by HotSpot and runs interpreted, ten times slower. Past that size Spark
        # falls back to per-expression code, which is compiled.
        "spark.sql.codegen.hugeMethodLimit": "8000",
        "spark.python.worker.reuse": "true",
        # extraClassPath puts the jars on the system class path, where py4j metadata connections
        # (jobs.sources.jdbc) and function registration find them too; spark.jars ships them to executors.
        "spark.jars": ",".join(jars),
        "spark.driver.extraClassPath": ":".join(jars),
    }
    return LocalSettings(config, archive, short and launches)


def launch_jvm(settings: LocalSettings) -> None:
    """Start the driver JVM (spark-submit), unless one runs; the session is built on it later."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # The Python workers run carve's own interpreter (its virtual environment), not whatever
    # `python3` is first on PATH, which may lack carve's packages or carve itself. PySpark reads
    # only this variable for local workers (spark.pyspark.python is spark-submit's).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if SparkContext._gateway is None:
        SparkContext._ensure_initialized(conf=SparkConf(loadDefaults=False).setAll(settings.config.items()))
        discard_at_exit(settings.archive)


def local_session(settings: LocalSettings) -> SparkSession:
    """The session on the JVM `launch_jvm` started (it starts one when none runs)."""
    launch_jvm(settings)
    spark = SparkSession.builder.config(map=settings.config).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    remember_classes(spark)
    if settings.short:
        keep_java_objects(spark)
    finish_at_exit(spark, settings.archive)
    return spark


def build_local_spark(
    app_name: str = "carve",
    master: str | None = None,
    shuffle_partitions: int | None = None,
    short: bool = False,
) -> SparkSession:
    """The local session (see local_settings for `short`)."""
    return local_session(local_settings(app_name, master, shuffle_partitions, short))


class LocalRuntime:
    """local[*] PySpark with the JDBC jars; no Glue services."""

    name = "local PySpark"

    def __init__(self, credentials: SourceCredentials | None = None) -> None:
        self.credentials = credentials or SourceCredentials()
        self._starting: tuple[LocalSettings, Future[None]] | None = None

    def start(self, app_name: str, short: bool = False) -> None:
        """Launch the JVM on a thread of its own: it takes about a second (spark-submit, then the
        driver), which the command spends importing and reading what it needs meanwhile. The
        session itself is built by `spark()`, on the caller's thread: built here, its hundred-odd
        py4j calls would each wait for the interpreter lock while the caller imports."""
        if self._starting is None and SparkContext._gateway is None:
            settings = local_settings(app_name, short=short)
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carve-jvm-start")
            self._starting = settings, pool.submit(launch_jvm, settings)
            pool.shutdown(wait=False)  # the thread ends with the launch

    def spark(self, app_name: str, short: bool = False) -> SparkSession:
        """The session on the JVM `start()` launched (with its name and settings), else a new one."""
        if self._starting is None:
            return build_local_spark(app_name, short=short)
        (settings, launched), self._starting = self._starting, None
        launched.result()
        return local_session(settings)

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
