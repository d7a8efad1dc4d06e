"""The developer entry points: scripts/with-dynalite, scripts/setup, scripts/ensure-databases.

with-dynalite runs the real dynalite from .tools; setup and ensure-databases
run for real where that is cheap (a second setup on a ready checkout) and
against stub commands where the real thing would install packages or restart
the shared databases.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WITH_DYNALITE = REPO / "scripts" / "with-dynalite"
SETUP = REPO / "scripts" / "setup"
ENSURE_DATABASES = REPO / "scripts" / "ensure-databases"

PID_LINE = re.compile(r"dynalite pid (\d+) at (http://127\.0\.0\.1:\d+)")

LIST_TABLES = textwrap.dedent(
    """
    import os, boto3
    client = boto3.client("dynamodb", endpoint_url=os.environ["CARVE_ENDPOINT_URL"])
    print("tables", client.list_tables()["TableNames"])
    print("pid", os.environ["CARVE_DYNALITE_PID"])
    """
)


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """True once no process has this pid (a zombie still counts as present)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


def _printed_pid(stderr: str) -> int:
    match = PID_LINE.search(stderr)
    assert match, f"with-dynalite did not report its dynalite pid; stderr:\n{stderr}"
    return int(match.group(1))


def _run_with_dynalite(*cmd: str, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CARVE_DYNALITE_PORT"}
    return subprocess.run(
        [str(WITH_DYNALITE), *cmd],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=env,
        **kwargs,
    )


def test_with_dynalite_serves_dynamodb_and_stops_it():
    result = _run_with_dynalite(sys.executable, "-c", LIST_TABLES)

    assert result.returncode == 0, result.stderr
    assert "tables []" in result.stdout
    pid = _printed_pid(result.stderr)
    assert f"pid {pid}" in result.stdout  # CARVE_DYNALITE_PID is the process it stops
    assert _gone(pid), f"dynalite {pid} still running after with-dynalite returned"


def test_with_dynalite_exports_local_endpoint_and_dummy_credentials():
    show = "import os; print(*(os.environ.get(k) for k in ('CARVE_ENDPOINT_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_DEFAULT_REGION', 'AWS_PROFILE')))"
    env_extra = {"AWS_PROFILE": "production", "AWS_ACCESS_KEY_ID": "AKIAREAL"}
    result = subprocess.run(
        [str(WITH_DYNALITE), sys.executable, "-c", show],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env_extra},
    )

    assert result.returncode == 0, result.stderr
    url, key, secret, region, profile = result.stdout.split()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    assert (key, secret, region, profile) == ("local", "local", "us-east-1", "None")


def test_with_dynalite_returns_the_command_exit_code_and_stops_dynalite():
    result = _run_with_dynalite(sys.executable, "-c", "import sys; sys.exit(3)")

    assert result.returncode == 3
    assert _gone(_printed_pid(result.stderr))


def test_with_dynalite_stops_dynalite_on_ctrl_c():
    # Ctrl-C reaches the whole foreground process group: wrapper and command.
    proc = subprocess.Popen(
        [str(WITH_DYNALITE), sys.executable, "-c", "import os, time; print(os.environ['CARVE_DYNALITE_PID'], flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        pid = int(proc.stdout.readline())
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == -signal.SIGINT
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert _gone(pid)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) not installed")
def test_with_dynalite_killed_outright_still_takes_dynalite_down():
    proc = subprocess.Popen(
        [str(WITH_DYNALITE), sys.executable, "-c", "import os, time; print(os.environ['CARVE_DYNALITE_PID'], flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        pid = int(proc.stdout.readline())
        proc.kill()  # SIGKILL: no trap runs, the kernel's parent-death signal must
        proc.wait(timeout=10)
        assert _gone(pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned sleeping command


def test_setup_second_run_on_a_ready_checkout_does_nothing():
    first = subprocess.run([str(SETUP)], capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stdout + first.stderr

    started = time.monotonic()
    second = subprocess.run([str(SETUP)], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    assert second.returncode == 0, second.stderr
    assert second.stdout == "" and second.stderr == ""
    assert time.monotonic() - started < 10


# --- setup and ensure-databases against stub commands ------------------------


def _stub(bin_dir: Path, name: str, body: str) -> Path:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def sandbox(tmp_path):
    """A checkout with the real scripts and stub python3.11, pip, npm and database probes."""
    (tmp_path / "scripts").mkdir()
    for script in (SETUP, ENSURE_DATABASES):
        shutil.copy2(script, tmp_path / "scripts" / script.name)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "carve"\n')
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    _stub(
        bin_dir,
        "python3.11",
        f"""
        # python3.11 -m venv --clear .venv: a venv whose python logs its calls (pip, compileall)
        mkdir -p "$4/bin"
        printf '#!/usr/bin/env bash\\necho "python $*" >>{log}\\n' >"$4/bin/python"
        chmod +x "$4/bin/python"
        echo "venv $*" >>{log}
        """,
    )
    _stub(
        bin_dir,
        "npm",
        f"""
        echo "npm $*" >>{log}
        mkdir -p .tools/node_modules/.bin .tools/node_modules/dynalite
        printf '#!/bin/sh\\n' >.tools/node_modules/.bin/dynalite
        chmod +x .tools/node_modules/.bin/dynalite
        echo '{{"name": "dynalite", "version": "4.0.0"}}' >.tools/node_modules/dynalite/package.json
        """,
    )
    _stub(bin_dir, "pg_isready", "exit 0\n")
    _stub(bin_dir, "mariadb-admin", "exit 0\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CARVE_PYTHON": str(bin_dir / "python3.11")}

    def run(script: str = "setup", **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(tmp_path / "scripts" / script)],
            cwd=tmp_path,
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    run.root = tmp_path
    run.bin = bin_dir
    run.calls = lambda: log.read_text().splitlines() if log.exists() else []
    return run


def _jdbc_jars_present() -> bool:
    return all(Path(p).exists() for p in ("/usr/share/java/postgresql.jar", "/usr/share/java/mariadb-java-client.jar"))


@pytest.mark.skipif(not _jdbc_jars_present(), reason="JDBC jars not installed: setup would run apt-get")
def test_setup_installs_once_then_only_when_pyproject_changes(sandbox):
    fresh = sandbox()
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.splitlines() == [
        "setup: creating .venv with " + str(sandbox.bin / "python3.11"),
        "setup: installing carve and dev dependencies into .venv (pyproject.toml changed)",
        "setup: installing dynalite@4.0.0 into .tools",
    ]
    calls = sandbox.calls()
    assert [" ".join(c.split()[:3]) for c in calls] == ["venv -m venv", "python -m pip", "python -m compileall", "npm install --prefix"]
    assert "dynalite@4.0.0" in calls[3]
    assert calls[2] == "python -m compileall -q jobs transforms"  # carve's own modules, whatever PYTHONDONTWRITEBYTECODE says

    again = sandbox()
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert sandbox.calls()[4:] == ["python -m compileall -q jobs transforms"]  # nothing installed; only newer sources compiled

    (sandbox.root / "pyproject.toml").write_text('[project]\nname = "carve"\nversion = "2"\n')
    changed = sandbox()
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.splitlines() == ["setup: installing carve and dev dependencies into .venv (pyproject.toml changed)"]
    assert sandbox.calls()[5:] == [sandbox.calls()[1], "python -m compileall -q jobs transforms"]


@pytest.mark.skipif(not _jdbc_jars_present(), reason="JDBC jars not installed: setup would run apt-get")
def test_setup_retries_a_failed_install(sandbox):
    assert sandbox().returncode == 0
    venv_python = sandbox.root / ".venv" / "bin" / "python"
    (sandbox.root / "pyproject.toml").write_text('[project]\nname = "carve"\nversion = "3"\n')
    venv_python.write_text("#!/usr/bin/env bash\nexit 1\n")

    assert sandbox().returncode != 0

    venv_python.write_text("#!/usr/bin/env bash\nexit 0\n")
    retried = sandbox()
    assert retried.returncode == 0
    assert "installing carve" in retried.stdout


def _single_postgres_version() -> str | None:
    versions = os.listdir("/etc/postgresql") if os.path.isdir("/etc/postgresql") else []
    return versions[0] if len(versions) == 1 else None


needs_root_and_one_cluster = pytest.mark.skipif(
    os.geteuid() != 0 or _single_postgres_version() is None,
    reason="starting a database needs root and exactly one /etc/postgresql/<version>",
)


@needs_root_and_one_cluster
def test_ensure_databases_starts_a_stopped_postgresql_and_waits(sandbox):
    started = sandbox.root / "pg-started"
    _stub(sandbox.bin, "pg_isready", f"[[ -e {started} ]] && exit 0 || exit 2\n")
    _stub(sandbox.bin, "pg_ctlcluster", f'echo "pg_ctlcluster $*" >>{sandbox.root}/calls.log; touch {started}\n')

    result = sandbox("ensure-databases")

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ensure-databases: starting PostgreSQL {_single_postgres_version()} (cluster main)\n"
    assert sandbox.calls() == [f"pg_ctlcluster --skip-systemctl-redirect {_single_postgres_version()} main start"]


@needs_root_and_one_cluster
def test_ensure_databases_starts_a_stopped_mariadb_and_waits(sandbox):
    started = sandbox.root / "mariadb-started"
    _stub(sandbox.bin, "mariadb-admin", f"[[ -e {started} ]] && exit 0 || exit 1\n")
    _stub(sandbox.bin, "start-stop-daemon", f'echo "start-stop-daemon $*" >>{sandbox.root}/calls.log; touch {started}\n')

    result = sandbox("ensure-databases")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "ensure-databases: starting MariaDB\n"
    assert sandbox.calls() == ["start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"]


@needs_root_and_one_cluster
def test_ensure_databases_says_which_database_did_not_come_up(sandbox):
    _stub(sandbox.bin, "pg_isready", "exit 2\n")
    _stub(sandbox.bin, "pg_ctlcluster", "exit 1\n")

    result = sandbox("ensure-databases", CARVE_DB_WAIT_SECONDS="1")

    assert result.returncode == 1
    assert "ensure-databases: error: PostgreSQL did not answer on 127.0.0.1 within 1s" in result.stderr
