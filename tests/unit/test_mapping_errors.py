"""Golden error messages: every invalid mapping is paired with the exact lines `carve validate` prints.

tests/data/mappings/invalid/NAME.yaml  -> NAME.expected holds its stderr, one problem a line,
with the path as given on the command line (relative to the repository root). To add a case,
write NAME.yaml, run `carve validate tests/data/mappings/invalid/NAME.yaml 2> ...NAME.expected`
from the root, and read the message as its user would: it must say where and what to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs import cli

ROOT = Path(__file__).resolve().parents[2]
INVALID = sorted((ROOT / "tests/data/mappings/invalid").glob("*.yaml"))
VALID = sorted((ROOT / "tests/data/mappings/valid").glob("*.yaml")) + [
    ROOT / "mappings/demo.yaml",
    ROOT / "mappings/demo_mariadb.yaml",
]


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.fixture
def carve(monkeypatch, capsys):
    """Run `carve ARGS` in-process from the repository root; (exit status, stdout, stderr)."""
    monkeypatch.chdir(ROOT)

    def run(*args: str) -> tuple[int, str, str]:
        status = cli.main(list(args))
        out, err = capsys.readouterr()
        return status, out, err

    return run


def test_every_invalid_mapping_has_its_expected_lines():
    missing = [relative(p) for p in INVALID if not p.with_suffix(".expected").exists()]
    assert INVALID and not missing


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_mapping_prints_exactly_the_expected_lines(carve, path):
    status, out, err = carve("validate", relative(path))

    assert status == 1
    assert err == path.with_suffix(".expected").read_text(encoding="utf-8")
    assert out == ""
    assert "Traceback" not in out + err


def test_several_files_report_each_file_and_fail_once(carve):
    files = [ROOT / "tests/data/mappings/valid/minimal.yaml", ROOT / "tests/data/mappings/invalid/wrong_version.yaml",
             ROOT / "tests/data/mappings/invalid/several_errors.yaml"]

    status, out, err = carve("validate", *map(relative, files))

    assert status == 1
    assert out == "tests/data/mappings/valid/minimal.yaml: ok (1 entities into ShopOrders)\n"
    assert err == "".join(p.with_suffix(".expected").read_text(encoding="utf-8") for p in files[1:])


def test_a_file_that_does_not_exist_is_one_line(carve):
    status, out, err = carve("validate", "tests/data/mappings/invalid/no_such_file.yml")

    assert status == 1
    assert err == "tests/data/mappings/invalid/no_such_file.yml: cannot read the file: No such file or directory\n"


@pytest.mark.parametrize("path", VALID, ids=lambda p: relative(p))
def test_valid_mapping_passes(carve, path):
    status, out, err = carve("validate", relative(path))

    assert (status, err) == (0, "")
    assert out.startswith(f"{relative(path)}: ok (")


def test_schema_is_json_describing_entities(carve):
    status, out, err = carve("schema")

    assert (status, err) == (0, "")
    schema = json.loads(out)
    assert "entities" in schema["properties"]
    assert schema["properties"]["entities"]["type"] == "object"


def test_nulls_null_is_the_policy_not_an_absent_value():
    # YAML reads `nulls: null` as None, which once meant "as the policy" and silently omitted NULLs.
    from transforms.mapping import load_mapping

    demo = load_mapping(ROOT / "mappings/demo.yaml")
    sessions = load_mapping(ROOT / "tests/data/mappings/valid/query_ttl.yaml")

    assert demo.entities["customer"].attributes["notes"].nulls == "null"
    assert demo.entities["customer"].attributes["email"].nulls is None
    assert sessions.policy.nulls == "null"
