"""`carve proxy` as a data engineer runs it: the URL to point at, a line per busy second, totals on Ctrl-C."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import uuid

import boto3
import pytest
from botocore.config import Config

pytestmark = pytest.mark.integration


def lines_of(process: subprocess.Popen) -> "queue.Queue[str]":
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def next_line(lines: "queue.Queue[str]", containing: str) -> str:
    while True:
        line = lines.get(timeout=30)  # a hang fails the test instead of blocking it
        if containing in line:
            return line


def test_carve_proxy_prints_where_to_point_and_what_it_let_through(dynamodb_endpoint):
    table = f"Cli{uuid.uuid4().hex[:10]}"
    direct = boto3.session.Session().client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")
    direct.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
    )
    direct.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1})
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "proxy", "--upstream", dynamodb_endpoint,
         "--write-capacity", "5", "--burst-seconds", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = lines_of(process)
        url = re.search(r"point --endpoint-url at (http://127\.0\.0\.1:\d+)", next_line(lines, "--endpoint-url"))[1]
        proxied = boto3.session.Session().client(
            "dynamodb", endpoint_url=url, config=Config(region_name="us-east-1", retries={"total_max_attempts": 1}))
        batch = [{"PutRequest": {"Item": {"PK": {"S": f"k{i}"}}}} for i in range(8)]

        response = proxied.batch_write_item(RequestItems={table: batch})
        second = next_line(lines, f"{table}: ")
        process.send_signal(signal.SIGINT)
        total = next_line(lines, f"total {table}")
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
        direct.delete_table(TableName=table)

    assert len(response["UnprocessedItems"][table]) == 3  # 5 WCU, one second's worth, of 8
    assert re.search(rf"^\d\d:\d\d:\d\d  {table}: \d+/5 WCU, \d+ items, \d+ requests", second)
    assert total == f"total {table}: 5 WCU, 5 items, 1 requests, 0 throttled"
    assert process.returncode == 0
