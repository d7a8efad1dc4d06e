"""What the capacity proxy costs per request, and how many 25-item BatchWriteItem calls it sustains.

    .venv/bin/python scripts/proxy_benchmark.py [--seconds 5] [--connections 1,4,8] [--serial 400]

Starts its own dynalite and a proxy in its own process (`spawn_proxy`), both on free loopback
ports, and sends the same kind of traffic to each: 25 PutRequests of ~200-byte items per call,
fresh keys every call, over persistent HTTP/1.1 connections from a separate client process with
one thread per connection. The client builds requests by hand (dynalite does not check
signatures), so it stays cheap and the figures are dynalite's and the proxy's.

It prints, for dynalite directly and through the proxy:
- serial latency (one call at a time): mean and p50/p99; the difference is the proxy's added latency;
- throughput with N concurrent connections for --seconds;
- the proxy process's CPU time per request (from /proc), the cost that limits it on 2 cores;
- with --write-capacity, the proxy's per-second record of accepted WCU against that capacity.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.devtools.capacity_proxy import ProxyConfig, spawn_proxy  # noqa: E402
from jobs.devtools.local_stack import LOCAL_AWS_ENV, start_dynalite  # noqa: E402

TABLE = "ProxyBench"
HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Target": "DynamoDB_20120810.BatchWriteItem",
    "X-Amz-Date": "20250101T000000Z",
    "Authorization": "AWS4-HMAC-SHA256 Credential=bench/20250101/us-east-1/dynamodb/aws4_request, "
                     "SignedHeaders=host;x-amz-date, Signature=0",
}


def batch_body(prefix: str, n: int) -> bytes:
    items = [
        {"PutRequest": {"Item": {
            "PK": {"S": f"{prefix}#{n}#{i}"}, "SK": {"S": "ORDER#2024-01-01#000123"},
            "total": {"N": "123.45"}, "status": {"S": "shipped"},
            "lines": {"L": [{"M": {"sku": {"S": "SKU-1"}, "qty": {"N": "2"}}}]},
            "note": {"S": "x" * 80},
        }}}
        for i in range(25)
    ]
    return json.dumps({"RequestItems": {TABLE: items}}).encode()


def _call(conn: http.client.HTTPConnection, body: bytes) -> int:
    conn.request("POST", "/", body=body, headers=HEADERS)
    response = conn.getresponse()
    response.read()
    return response.status


def serial(url: str, count: int, queue) -> None:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    latencies, statuses = [], {}
    for n in range(count):
        body = batch_body("serial", n)
        start = time.perf_counter()
        status = _call(conn, body)
        latencies.append(time.perf_counter() - start)
        statuses[status] = statuses.get(status, 0) + 1
    queue.put((latencies, statuses))


def load(url: str, connections: int, seconds: float, queue) -> None:
    parts = urllib.parse.urlsplit(url)
    counts = [0] * connections
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        n = 0
        while time.monotonic() < stop:
            status = _call(conn, batch_body(f"load{k}-{os.getpid()}", n))
            n += 1
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
        counts[k] = n

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put((sum(counts), time.monotonic() - began, statuses))


def in_client_process(target, *args):
    """Run a client function in its own process (its own GIL) and return what it put on the queue."""
    queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


# An upstream that answers at once (Node, one process): against it the proxy, not dynalite, is
# what limits the calls per second.
STUB_UPSTREAM = r"""
const http = require('http');
const table = JSON.stringify({Table: {TableName: 'ProxyBench', TableStatus: 'ACTIVE',
  KeySchema: [{AttributeName: 'PK', KeyType: 'HASH'}, {AttributeName: 'SK', KeyType: 'RANGE'}],
  BillingModeSummary: {BillingMode: 'PAY_PER_REQUEST'}}});
const done = JSON.stringify({UnprocessedItems: {}});
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = (req.headers['x-amz-target'] || '').endsWith('DescribeTable') ? table : done;
    res.writeHead(200, {'Content-Type': 'application/x-amz-json-1.0', 'Content-Length': Buffer.byteLength(body)});
    res.end(body);
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
"""


def start_stub() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(["node", "-e", STUB_UPSTREAM], stdout=subprocess.PIPE, text=True)
    return process, f"http://127.0.0.1:{process.stdout.readline().strip()}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def create_table(url: str) -> None:
    import boto3

    client = boto3.session.Session().client("dynamodb", endpoint_url=url, region_name="us-east-1")
    client.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("PK", "SK")],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
    )
    while client.describe_table(TableName=TABLE)["Table"]["TableStatus"] != "ACTIVE":
        time.sleep(0.1)


def report_serial(name: str, latencies: list[float], statuses: dict) -> float:
    ms = sorted(x * 1000 for x in latencies)
    mean = statistics.fmean(ms)
    print(f"  {name:<8} serial: mean {mean:6.2f} ms, p50 {ms[len(ms) // 2]:6.2f} ms, "
          f"p99 {ms[int(len(ms) * 0.99)]:6.2f} ms  statuses {statuses}")
    return mean


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", default="1,4,8")
    parser.add_argument("--serial", type=int, default=400)
    parser.add_argument("--write-capacity", type=float, help="also run a throttled phase at this WCU/s")
    args = parser.parse_args()
    os.environ.update({k: os.environ.get(k, v) for k, v in LOCAL_AWS_ENV.items()})

    with start_dynalite() as dynalite, spawn_proxy(dynalite.url, ProxyConfig()) as proxy:
        create_table(dynalite.url)
        print(f"dynalite {dynalite.url}, proxy {proxy.url} (pid {proxy.process.pid}); 25 items per call")
        # Warm both (JIT in dynalite, connections, the proxy's table description).
        in_client_process(serial, dynalite.url, 100)
        in_client_process(serial, proxy.url, 100)

        direct = report_serial("direct", *in_client_process(serial, dynalite.url, args.serial))
        cpu_before = cpu_seconds(proxy.process.pid)
        proxied = report_serial("proxy", *in_client_process(serial, proxy.url, args.serial))
        cpu_per_request = (cpu_seconds(proxy.process.pid) - cpu_before) / args.serial
        print(f"  added latency per call: {proxied - direct:.2f} ms; "
              f"proxy CPU per call: {cpu_per_request * 1000:.2f} ms")

        for connections in (int(c) for c in args.connections.split(",")):
            calls, elapsed, statuses = in_client_process(load, dynalite.url, connections, args.seconds)
            print(f"  direct  {connections:2d} connections: {calls / elapsed:7.1f} calls/s ({calls} calls) {statuses}")
            cpu_before = cpu_seconds(proxy.process.pid)
            calls, elapsed, statuses = in_client_process(load, proxy.url, connections, args.seconds)
            cpu = cpu_seconds(proxy.process.pid) - cpu_before
            print(f"  proxy   {connections:2d} connections: {calls / elapsed:7.1f} calls/s ({calls} calls) {statuses}; "
                  f"proxy CPU {cpu / elapsed * 100:.0f}% of a core, {cpu / max(calls, 1) * 1000:.2f} ms per call")

        stub, stub_url = start_stub()
        try:
            with spawn_proxy(stub_url, ProxyConfig()) as ceiling:
                in_client_process(serial, ceiling.url, 100)
                for connections in (4, 8):
                    cpu_before = cpu_seconds(ceiling.process.pid)
                    calls, elapsed, statuses = in_client_process(load, ceiling.url, connections, args.seconds)
                    cpu = cpu_seconds(ceiling.process.pid) - cpu_before
                    print(f"  proxy in front of an instant stub, {connections} connections: {calls / elapsed:7.1f} "
                          f"calls/s {statuses}; proxy CPU {cpu / elapsed * 100:.0f}% of a core")
        finally:
            stub.terminate()
            stub.wait()

        if args.write_capacity:
            proxy.configure(write_capacity=args.write_capacity, burst_seconds=0)
            proxy.reset()
            calls, elapsed, statuses = in_client_process(load, proxy.url, 4, args.seconds)
            record = proxy.stats()["tables"][TABLE]
            full = record["seconds"][2:-1]  # whole seconds, after the first full bucket is spent
            print(f"  throttled at {args.write_capacity:g} WCU/s: {calls / elapsed:.1f} calls/s {statuses}")
            for row in full:
                print(f"    second {row['second']}: {row['accepted_wcu']} WCU accepted, {row['requests']} requests, "
                      f"{row['throttled_requests']} throttled, {row['partial_responses']} partial")
    return 0


if __name__ == "__main__":
    sys.exit(main())
