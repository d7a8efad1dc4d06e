"""`carve run` as a user starts it, from a folder outside the checkout, when things go wrong:
a clear line and exit status 1 (130 for Ctrl-C), never a traceback, and a report.json with
`status` and `error`. Real PostgreSQL, dynalite, and the installed `carve` console script.

- An unreachable DynamoDB endpoint and an existing table with other keys fail in the compile
  stage, before any row is read (the report has no read stage).
- A report folder that cannot be made fails before Spark starts.
- Ctrl-C while writing exits 130; the report says interrupted and how many items DynamoDB had
  acknowledged, which the table then holds at least.
- The Spark workers run carve's interpreter: a `python3` first on PATH that is not it does not
  matter (it would fail the write stage with "No module named 'jobs'").
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from jobs.devtools.demo_data import DemoDatabase
from jobs.sinks.table import delete_table
from tests.support.databases import create_database, drop_database, query
from tests.support.dynamodb import dynamodb_client, table_count

pytestmark = pytest.mark.integration

CARVE = str(Path(sys.executable).with_name("carve"))
ROWS = 2000
MAPPING = """\
version: 1
name: failures
source: {connection: failures}
target:
  table: %s
  key: {partition: PK, sort: SK}
entities:
  thing:
    from: things
    key: {PK: "T#{id}", SK: THING}
    attributes: {name: name}
"""


@pytest.fixture(scope="module")
def source():
    target = DemoDatabase("postgres", database="carve_failures_test")
    create_database(target)
    query(target, "CREATE TABLE things (id integer PRIMARY KEY, name text)")
    query(target, "INSERT INTO things SELECT g, 'thing ' || g FROM generate_series(1, %s) g", [ROWS])
    yield f"jdbc:postgresql://127.0.0.1:5432/{target.database}"
    drop_database(target)


@pytest.fixture
def workdir(tmp_path, source, monkeypatch):
    """A folder outside the checkout with a mapping, and a `python3` first on PATH that is not carve's."""
    table = f"Failures{uuid.uuid4().hex[:8]}"
    (tmp_path / "failures.yaml").write_text(MAPPING % table, encoding="utf-8")
    decoy = tmp_path / "bin"
    decoy.mkdir()
    (decoy / "python3").write_text("#!/bin/sh\necho 'not carve python' >&2\nexit 3\n", encoding="utf-8")
    (decoy / "python3").chmod(0o755)
    monkeypatch.setenv("PATH", f"{decoy}:{os.environ['PATH']}")
    monkeypatch.setenv("CARVE_CONNECTION_FAILURES_URL", source)
    monkeypatch.setenv("CARVE_CONNECTION_FAILURES_USER", "postgres")
    monkeypatch.setenv("CARVE_SPARK_MASTER", "local[2]")
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    return tmp_path, table


def carve(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([CARVE, *args], cwd=workdir, env=dict(os.environ), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def written_so_far(client, table: str) -> int:
    try:
        return table_count(client, table)
    except client.exceptions.ResourceNotFoundException:  # the sink has not created it yet
        return 0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_from_outside_the_checkout_with_another_python3_on_path(workdir, dynamodb_endpoint):
    folder, table = workdir
    done = carve(folder, "run", "failures.yaml", "--endpoint-url", dynamodb_endpoint, "--report-dir", "out")
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "status: ok" in done.stdout
        assert report(folder / "out")["items_written"] == ROWS
    finally:
        delete_table(dynamodb_client(dynamodb_endpoint), table)


def test_an_unreachable_endpoint_fails_before_reading(workdir):
    folder, _ = workdir
    endpoint = f"http://127.0.0.1:{closed_port()}"
    done = carve(folder, "run", "failures.yaml", "--endpoint-url", endpoint, "--report-dir", "out")
    assert done.returncode == 1
    assert f"cannot reach DynamoDB at {endpoint}" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    written = report(folder / "out")
    assert written["status"] == "failed" and "cannot reach DynamoDB" in written["error"]
    assert list(written["stages"]) == ["compile"]  # nothing was read


def test_an_existing_table_with_other_keys_fails_before_reading(workdir, dynamodb_endpoint):
    folder, table = workdir
    client = dynamodb_client(dynamodb_endpoint)
    client.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
                        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    try:
        done = carve(folder, "run", "failures.yaml", "--endpoint-url", dynamodb_endpoint, "--report-dir", "out")
        assert done.returncode == 1
        expected = (f"table {table} already exists at {dynamodb_endpoint} and does not fit the mapping: its key is "
                    "(id HASH N) but the mapping writes (PK HASH S, SK RANGE S)")
        assert expected in done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        written = report(folder / "out")
        assert written["status"] == "failed" and expected in written["error"]
        assert list(written["stages"]) == ["compile"]
        assert table_count(client, table) == 0
    finally:
        delete_table(client, table)


def test_a_report_folder_that_cannot_be_made_fails_first(workdir, dynamodb_endpoint):
    folder, _ = workdir
    (folder / "a-file").write_text("", encoding="utf-8")
    done = carve(folder, "run", "failures.yaml", "--endpoint-url", dynamodb_endpoint, "--report-dir", "a-file/out",
                 timeout=60)
    assert done.returncode == 1
    assert "cannot write the report in a-file/out: Not a directory; choose another --report-dir" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_ctrl_c_while_writing_exits_130_and_reports_what_was_written(workdir, dynamodb_endpoint):
    folder, table = workdir
    command = [CARVE, "run", "failures.yaml", "--endpoint-url", dynamodb_endpoint, "--report-dir", "out",
               "--write-rate", "100"]  # 2,000 items at 100 WCU/s: about 20 seconds of writing
    process = subprocess.Popen(command, cwd=folder, env=dict(os.environ), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    client = dynamodb_client(dynamodb_endpoint)
    try:
        lines = []
        for line in process.stdout:  # the validate stage's line comes right before the write
            lines.append(line)
            if line.lstrip().startswith("validate"):
                break
        deadline = time.monotonic() + 60
        while written_so_far(client, table) < 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 130, "".join(lines) + out + err
        assert "Traceback" not in out + err
        written = report(folder / "out")
        assert written["status"] == "interrupted"
        assert written["error"].startswith("interrupted (Ctrl-C) while writing: DynamoDB had acknowledged at least")
        in_table = table_count(client, table)
        assert 0 < written["items_written"] <= in_table < ROWS
    finally:
        if process.poll() is None:
            process.kill()
        delete_table(client, table)
