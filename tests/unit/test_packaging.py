"""What ships: the wheel `carve deploy` puts on S3 for the Glue job, and the CLI that wheel gives."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from jobs.deploy import build_wheel

ROOT = Path(__file__).resolve().parents[2]

PACKAGES = {
    "jobs", "jobs/plan", "jobs/runtimes", "jobs/scaffold", "jobs/sinks", "jobs/sources", "jobs/sync", "jobs/verify",
    "transforms", "transforms/jvm", "transforms/mapping", "expectations", "mappings",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    with zipfile.ZipFile(build_wheel(tmp_path_factory.mktemp("wheel"))) as built:
        yield built


def test_the_wheel_holds_exactly_the_production_packages(wheel):
    names = wheel.namelist()
    packages = {str(PurePosixPath(n).parent) for n in names if n.endswith("/__init__.py")}
    assert packages == PACKAGES
    assert not [n for n in names if n.startswith(("jobs/devtools/", "tests/", "scripts/"))]


def test_the_wheel_carries_its_data_files(wheel):
    names = set(wheel.namelist())
    assert {"jobs/runtimes/log4j2.properties", "jobs/plan/prices.json", "mappings/demo.yaml", "mappings/demo_mariadb.yaml",
            "jobs/glue_job.py"} <= names
    assert any(n.startswith("expectations/suites/") and n.endswith(".json") for n in names)


def test_every_module_of_the_checkout_outside_devtools_is_in_the_wheel(wheel):
    names = set(wheel.namelist())
    for package in ("jobs", "transforms", "expectations"):
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            assert relative in names or relative.startswith("jobs/devtools/"), relative


BLOCK_DEVTOOLS = textwrap.dedent("""
    import sys
    from importlib.abc import MetaPathFinder

    class NoDevtools(MetaPathFinder):  # the Glue wheel has no jobs.devtools
        def find_spec(self, name, path=None, target=None):
            if name == "jobs.devtools" or name.startswith("jobs.devtools."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoDevtools())
    from jobs.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def commands(help_text: str) -> set[str]:
    """The command names `carve --help` lists."""
    listing = help_text.split("Commands:", 1)[1]
    return {line.split()[0] for line in listing.splitlines() if line.startswith("  ") and line.split()}


def carve_without_devtools(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_DEVTOOLS, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_without_the_development_tooling_the_cli_still_runs_and_has_no_demo():
    done = carve_without_devtools("--help")
    assert done.returncode == 0, done.stderr
    assert commands(done.stdout) == {"check-patterns", "deploy", "plan", "reconcile", "run", "scaffold", "schema", "sync", "validate"}


def test_a_development_install_has_demo_and_proxy():
    carve = Path(sys.executable).parent / "carve"  # the console script
    done = subprocess.run([str(carve), "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert commands(done.stdout) == {"check-patterns", "demo", "deploy", "plan", "proxy", "reconcile", "run", "scaffold", "schema", "sync", "validate"}
