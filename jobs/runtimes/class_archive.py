"""A class-data-sharing archive of the classes a local Spark session loads, so later JVMs start sooner.

A Spark session and its first jobs load some 15,000 classes, each looked up through some 250
jars; on a small job that is most of the time (a sampled `carve plan` of the demo took 16 s
without the archive, 13 s with it). HotSpot can save the classes a JVM loaded, parsed and
verified to a file when it exits (-XX:ArchiveClassesAtExit, JDK 13 and later) and map that file
at the next start (-XX:SharedArchiveFile).

The first local session on a machine writes the archive: when its Python process ends, the JVM
is stopped and waited for (its exit takes a few seconds more), and the file is renamed into
place, so no JVM ever maps half an archive. Every later session maps it. The archive's name
carries a digest of what it depends on (the java binary, Spark, the class path), so a new JDK or
jar makes a new archive instead of a mismatch; the new one replaces the old (about 120 MB each).
CARVE_CLASS_ARCHIVE=off turns all of this off (for example to start the JVM with a Java agent or
Flight Recorder, which JDK 17 cannot combine with a dynamic archive: it crashes).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pyspark
from py4j.protocol import Py4JError
from pyspark import SparkContext
from pyspark.sql import SparkSession

from jobs.runtimes.jvm import cache_dir

# The JVM says nothing about the archive: a missing or unusable one only means a slower start.
QUIET = "-Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"


def _java() -> Path | None:
    """The java Spark starts: $JAVA_HOME's, else the first on PATH."""
    home = os.environ.get("JAVA_HOME")
    java = shutil.which("java", path=str(Path(home) / "bin")) if home else shutil.which("java")
    return Path(java).resolve() if java else None


def archive_path(jars: list[str]) -> Path | None:
    """Where the archive for this java and these jars lives (None: no java found, or switched off)."""
    java = _java()
    if java is None or os.environ.get("CARVE_CLASS_ARCHIVE", "").lower() == "off":
        return None
    digest = hashlib.sha256(pyspark.__version__.encode())
    spark_jars = Path(pyspark.__file__).parent / "jars"
    for path in [java, *map(Path, jars), spark_jars]:
        stat = path.stat() if path.exists() else None
        digest.update(f"{path}\0{stat and stat.st_size}\0{stat and stat.st_mtime_ns}\n".encode())
    return cache_dir() / f"spark-classes-{digest.hexdigest()[:16]}.jsa"


def java_options(archive: Path | None) -> str:
    """The driver's JVM options for the archive: map it when it exists, else write one at exit."""
    if archive is None or " " in str(archive):
        return ""
    remove_orphans(archive.parent)
    if archive.exists():
        return f"{QUIET} -XX:SharedArchiveFile={archive}"
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return ""
    return f"{QUIET} -XX:ArchiveClassesAtExit={_partial(archive)}"


def remove_orphans(directory: Path) -> None:
    """Remove the partial archives of processes that are gone. A process killed while its JVM
    wrote one (kill -9; pytest-xdist stops a worker that takes over 10 s to exit) never removes
    it, and each is about 140 MB."""
    for partial in directory.glob("spark-classes-*.jsa.*.partial"):
        pid = partial.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _running(int(pid)):
            partial.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def finish_at_exit(spark: SparkSession, archive: Path | None) -> None:
    """When this session's JVM is writing the archive: at Python's exit, stop the JVM, wait for
    the archive and put it in place (a failure leaves no file behind, only a slower next start)."""
    if archive is None or archive.exists():
        return
    partial = _partial(archive)

    def finish() -> None:
        try:
            proc = spark.sparkContext._gateway.proc
            spark.stop()
            if archive.exists():  # another process put one in place meanwhile: this one is not needed
                proc.kill()  # before it spends seconds writing it (pytest-xdist stops a worker after 10 s)
                proc.wait(timeout=60)
                return
            proc.stdin.close()  # the JVM's gateway exits when its stdin closes, and writes the archive
            if proc.wait(timeout=120) == 0 and partial.exists() and _maps(partial):
                os.replace(partial, archive)
                for older in archive.parent.glob("spark-classes-*.jsa"):  # one archive is kept (120 MB)
                    if older != archive:
                        older.unlink(missing_ok=True)
        except (OSError, subprocess.SubprocessError, Py4JError):
            pass  # an archive only makes later starts faster: the command itself has finished
        finally:
            partial.unlink(missing_ok=True)

    atexit.register(finish)


def discard_at_exit(archive: Path | None) -> None:
    """When a JVM just launched is writing the archive: at Python's exit, stop it and remove
    what it wrote, unless finish_at_exit put it in place first. A command that ends between the
    launch and its session (an error, Ctrl-C) otherwise left a 120 MB `.partial` file in the
    cache, written by the JVM after Python had gone; an archive of the classes loaded so far is
    not worth keeping either (every later session would map it instead of writing a full one)."""
    if archive is None or archive.exists():
        return
    partial = _partial(archive)

    def discard() -> None:
        proc = getattr(SparkContext._gateway, "proc", None)
        try:
            if proc is not None:
                proc.stdin.close()  # the JVM writes the archive as it exits: wait for that
                proc.wait(timeout=120)
        except (OSError, subprocess.SubprocessError):
            pass
        finally:
            partial.unlink(missing_ok=True)

    atexit.register(discard)  # registered before finish_at_exit's, so it runs after it


def _maps(archive: Path) -> bool:
    """Whether a JVM starts with the archive: a short or damaged one (a full disk) crashes every
    JVM that maps it, so it is tried once here, never handed to a session."""
    java = _java()
    if java is None:
        return False
    command = [str(java), *QUIET.split(), f"-XX:SharedArchiveFile={archive}", "-XX:-CreateCoredumpOnCrash", "-version"]
    with tempfile.TemporaryDirectory() as scratch:  # where a crashing JVM leaves its hs_err file
        return subprocess.run(command, capture_output=True, timeout=60, cwd=scratch).returncode == 0


def _partial(archive: Path) -> Path:
    return archive.with_name(f"{archive.name}.{os.getpid()}.partial")
