"""What makes a short command start sooner: the class archive, the remembered py4j classes and a
sampled plan's session settings. None of them may change a result or outlive its command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from py4j.java_gateway import JavaClass
from pyspark.sql import functions as F

from jobs.plan.planner import SAMPLE_SETTINGS, session_settings
from jobs.runtimes import class_archive
from jobs.runtimes.gateway import LOOKED_UP, remember_classes, session_threads

ROOT = Path(__file__).resolve().parents[2]


def in_child(code: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """`code` in a Python process of its own, with a cache of its own (no class archive yet). Its
    output is read to the end, which comes when its JVM, which shares it, has exited too."""
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, "XDG_CACHE_HOME": str(cache)},
                          capture_output=True, text=True, timeout=180, cwd=ROOT)


def test_the_archive_is_named_by_what_it_depends_on(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    jar = tmp_path / "driver.jar"
    jar.write_bytes(b"one")
    first = class_archive.archive_path([str(jar)])
    assert first is not None and first.parent == tmp_path / "carve"
    assert class_archive.archive_path([str(jar)]) == first
    jar.write_bytes(b"a newer driver")  # another jar: another archive, never a mismatched one
    assert class_archive.archive_path([str(jar)]) != first
    monkeypatch.setenv("CARVE_CLASS_ARCHIVE", "off")
    assert class_archive.archive_path([str(jar)]) is None


def test_a_missing_archive_is_written_at_exit_and_an_existing_one_is_mapped(tmp_path):
    archive = tmp_path / "spark-classes-x.jsa"
    writing = class_archive.java_options(archive)
    assert f"-XX:ArchiveClassesAtExit={archive}.{os.getpid()}.partial" in writing
    assert "-XX:SharedArchiveFile" not in writing
    archive.write_bytes(b"")
    assert class_archive.java_options(archive).endswith(f"-XX:SharedArchiveFile={archive}")
    assert class_archive.java_options(None) == ""


def test_a_jvm_whose_archive_another_process_put_in_place_meanwhile_writes_none(tmp_path):
    # Two sessions launched before any archive existed (the test workers of pytest-xdist): the
    # first to exit puts its archive in place, the other's JVM is stopped without writing one.
    child = ("from jobs.runtimes.local import local_session, local_settings\n"
             "settings = local_settings('carve-test', short=True)\n"
             "spark = local_session(settings)\n"
             "assert spark.range(3).count() == 3\n"
             "settings.archive.write_bytes(b'put in place by another process')\n")
    ended = in_child(child, cache=tmp_path)
    assert ended.returncode == 0, ended.stderr
    [archive] = [p for p in (tmp_path / "carve").iterdir() if p.name.startswith("spark-classes")]
    assert archive.read_bytes() == b"put in place by another process"  # not replaced, no .partial beside it


def test_partial_archives_of_processes_that_are_gone_are_removed_when_a_jvm_launches(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    orphan = tmp_path / f"spark-classes-0123456789abcdef.jsa.{gone}.partial"
    writing = tmp_path / f"spark-classes-0123456789abcdef.jsa.{os.getpid()}.partial"  # this process's: kept
    other = tmp_path / "notes.partial"
    for path in (orphan, writing, other):
        path.write_bytes(b"x")
    class_archive.java_options(tmp_path / "spark-classes-fedcba9876543210.jsa")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([writing.name, other.name])


def test_remembered_classes_are_the_jvm_classes_and_functions_still_work(spark):
    remember_classes(spark)
    remembered = vars(spark.sparkContext._jvm)
    for name in LOOKED_UP:
        assert isinstance(remembered[name], JavaClass)
    assert remembered["functions"]._fqn == "org.apache.spark.sql.functions"
    row = spark.range(3).select(F.sum(F.col("id") + F.lit(1)).alias("s")).first()
    assert row.s == 6
    # and the methods called through them are kept: the next F.lit costs one round trip, not two
    assert {"col", "lit", "sum"} <= set(vars(remembered["functions"]))


@pytest.mark.parametrize("key", sorted(SAMPLE_SETTINGS))
def test_a_sampled_plan_leaves_the_session_as_it_found_it(spark, key):
    before = spark.conf.get(key, None)
    with session_settings(spark, SAMPLE_SETTINGS):
        assert spark.conf.get(key) == SAMPLE_SETTINGS[key]
    assert spark.conf.get(key, None) == before


def test_an_archive_a_jvm_wrote_maps_and_a_cut_short_one_is_refused(tmp_path):
    java = class_archive._java()
    assert java is not None
    archive = tmp_path / "tiny.jsa"
    subprocess.run([str(java), f"-XX:ArchiveClassesAtExit={archive}", "-Xlog:cds=off", "-version"],
                   capture_output=True, check=True, timeout=120)
    assert archive.stat().st_size > 0 and class_archive._maps(archive)
    # What a full disk leaves: a JVM that maps it dies (SIGBUS), so it is never put in place.
    short = tmp_path / "short.jsa"
    short.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert not class_archive._maps(short)


def test_a_command_that_ends_between_its_jvm_and_its_session_leaves_no_archive_behind(tmp_path):
    # What `carve plan` does when it fails after runtime.start() launched the JVM and before
    # spark() built the session: the JVM was writing an archive of the classes it loaded, and
    # nothing put that away.
    child = ("import sys; from jobs.runtimes.local import launch_jvm, local_settings\n"
             "settings = local_settings('carve-test', short=True)\n"
             "print(settings.config['spark.driver.extraJavaOptions'])\n"
             "launch_jvm(settings)\n"
             "sys.exit('failed before the session')\n")
    ended = in_child(child, cache=tmp_path)
    assert ended.returncode == 1 and ended.stderr.endswith("failed before the session\n"), ended.stderr
    assert "-XX:ArchiveClassesAtExit=" in ended.stdout  # the JVM was writing one
    assert sorted(p.name for p in (tmp_path / "carve").iterdir() if p.name.startswith("spark-classes")) == []


def test_session_threads_analyse_with_the_sessions_settings(spark):
    # carve's sessions are case-sensitive (a table may have both `name` and `Name`). In a plain
    # thread, df["name"] resolves case-insensitively, with Spark's defaults: AMBIGUOUS_REFERENCE.
    assert spark.conf.get("spark.sql.caseSensitive") == "true"
    frame = spark.createDataFrame([(1, 2)], "name int, Name int")
    with session_threads(spark, 1, "carve-test") as pool:
        assert pool.submit(lambda: frame.select(frame["name"]).first()[0]).result() == 1
