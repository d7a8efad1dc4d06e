"""carve's Java functions: the jar's name follows its sources; a missing jar or JDK is a SetupError."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobs.runtimes import jvm
from transforms import wire
from transforms.errors import SetupError


def test_the_jar_is_named_by_the_digest_of_its_sources(monkeypatch, tmp_path):
    monkeypatch.delenv("CARVE_TRANSFORMS_JAR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = jvm.jar_path()
    assert first.parent == tmp_path / "carve" and first.name.startswith("carve-transforms-")
    source = tmp_path / "Extra.java"
    source.write_text("class Extra {}\n")
    monkeypatch.setattr(jvm, "SOURCES", (*jvm.SOURCES, source))
    assert jvm.jar_path() != first  # changed sources: another jar, never a stale one


def test_a_named_jar_that_is_not_there_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("CARVE_TRANSFORMS_JAR", str(tmp_path / "nope.jar"))
    with pytest.raises(SetupError, match="CARVE_TRANSFORMS_JAR names .*nope.jar, which is not a file"):
        jvm.ensure_jar()


def test_no_javac_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("CARVE_TRANSFORMS_JAR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing built here yet
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(SetupError, match="needs a JDK's javac .* openjdk-17-jdk-headless"):
        jvm.ensure_jar()


def test_the_java_limits_are_the_ones_wire_py_publishes():
    # The Java functions cannot import wire.py: this keeps the two copies of DynamoDB's limits equal.
    source = (Path(jvm.__file__).parents[2] / "transforms" / "jvm" / "DynamoNumber.java").read_text()
    found = {name: int(value) for name, value in re.findall(r"static final int (\w+) = (-?\d+);", source)}
    assert found == {"MAX_DIGITS": wire.MAX_NUMBER_DIGITS, "MIN_EXPONENT": wire.MIN_NUMBER_EXPONENT,
                     "MAX_EXPONENT": wire.MAX_NUMBER_EXPONENT}
