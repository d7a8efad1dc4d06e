"""scripts/glue-docker: the docker command it builds (there is no Docker engine here to run it).

The command is checked for what the container needs (workspace, jars, network, credentials by
name), against the docker client's own `docker run --help` for the flags, and for the one thing
it must never hold: a value from the environment.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "glue-docker"


@pytest.fixture(scope="module")
def glue_docker():
    loader = importlib.machinery.SourceFileLoader("glue_docker", str(SCRIPT))
    spec = importlib.util.spec_from_loader("glue_docker", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


SECRETS = {"AWS_SECRET_ACCESS_KEY": "aws-secret-9f3a", "AWS_SESSION_TOKEN": "token-77c1",
           "CARVE_CONNECTION_STORE_DB_PASSWORD": "db-password-2b8e", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE123"}


@pytest.fixture
def environ(tmp_path):
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "postgresql-42.7.jar").write_bytes(b"jar")
    (jars / "postgresql.jar").symlink_to(jars / "postgresql-42.7.jar")
    (jars / "mariadb-java-client.jar").write_bytes(b"jar")
    (jars / "carve-transforms-0123.jar").write_bytes(b"jar")
    return {"CARVE_TRANSFORMS_JAR": f"{jars}/carve-transforms-0123.jar",**SECRETS, "AWS_PROFILE": "carve-dev", "CARVE_ENDPOINT_URL": "http://127.0.0.1:8000",
            "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5000", "CARVE_CONNECTION_STORE_DB_SECRET_ID": "prod/store",
            "CARVE_JDBC_JARS": f"{jars}/postgresql.jar:{jars}/mariadb-java-client.jar", "HOME": str(tmp_path),
            "UNRELATED": "not passed"}


@pytest.fixture
def home(tmp_path):
    (tmp_path / ".aws").mkdir()
    return tmp_path


def pairs(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, part in enumerate(command) if part == flag]


def test_a_job_runs_with_spark_submit_in_the_glue_5_image(glue_docker, environ, home):
    command = glue_docker.docker_command("job", ["--JOB_NAME", "local", "--carve_mapping", "package:demo.yaml"],
                                         environ, home)
    assert command[:2] == ["docker", "run"]
    assert "--rm" in command and pairs(command, "--network") == ["host"]
    image_at = command.index("public.ecr.aws/glue/aws-glue-libs:5")
    assert command[image_at - 2:image_at] == ["--entrypoint", "bash"]
    assert command[image_at + 1] == "-c"
    script = command[image_at + 2]
    assert command[image_at + 3:] == ["glue-docker", "--JOB_NAME", "local", "--carve_mapping", "package:demo.yaml"]
    assert "python3 -m pip install --user --quiet --no-deps dist/carve-0.1.0-py3-none-any.whl" in script
    assert "-r build/glue-docker/requirements.txt" in script
    assert ("exec spark-submit --conf spark.sql.session.timeZone=UTC "
            "--jars /opt/carve/jars/postgresql.jar,/opt/carve/jars/mariadb-java-client.jar,"
            "/opt/carve/jars/carve-transforms-0123.jar "
            "--driver-class-path /opt/carve/jars/postgresql.jar:/opt/carve/jars/mariadb-java-client.jar:"
            "/opt/carve/jars/carve-transforms-0123.jar "
            '/tmp/glue_job.py "$@"') in script


def test_the_workspace_the_jars_and_the_aws_profile_are_mounted(glue_docker, environ, home, tmp_path):
    command = glue_docker.docker_command("job", [], environ, home)
    mounts = pairs(command, "-v")
    assert f"{REPO}:/home/hadoop/workspace" in mounts
    assert f"{home}/.aws:/home/hadoop/.aws:ro" in mounts
    # The symlink's target is mounted, under the name carve looks for.
    assert f"{tmp_path}/jars/postgresql-42.7.jar:/opt/carve/jars/postgresql.jar:ro" in mounts
    assert f"{tmp_path}/jars/mariadb-java-client.jar:/opt/carve/jars/mariadb-java-client.jar:ro" in mounts
    assert pairs(command, "--workdir") == ["/home/hadoop/workspace"]


def test_environment_is_passed_by_name_and_no_value_is_on_the_command_line(glue_docker, environ, home):
    command = glue_docker.docker_command("job", [], environ, home)
    names = pairs(command, "-e")
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "CARVE_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3", "CARVE_CONNECTION_STORE_DB_PASSWORD", "CARVE_CONNECTION_STORE_DB_SECRET_ID"):
        assert name in names
    assert "UNRELATED" not in " ".join(command)
    text = " ".join(command)
    for value in SECRETS.values():
        assert value not in text
    # The only NAME=value pairs are carve's own fixed, non-secret settings.
    assert [n for n in names if "=" in n] == ["TZ=UTC", "CARVE_JDBC_JARS=/opt/carve/jars/postgresql.jar:"
                                                         "/opt/carve/jars/mariadb-java-client.jar",
                                                 "CARVE_TRANSFORMS_JAR=/opt/carve/jars/carve-transforms-0123.jar"]


def test_the_tests_run_from_the_workspace_with_the_dev_requirements(glue_docker, environ, home):
    command = glue_docker.docker_command("test", [], environ, home)
    script = command[command.index("-c") + 1]
    assert "-r build/glue-docker/requirements-test.txt" in script
    assert 'export PYTHONPATH="/home/hadoop/workspace${PYTHONPATH:+:$PYTHONPATH}"' in script
    assert command[-2:] == ["glue-docker", "tests/unit"]
    assert glue_docker.docker_command("test", ["-k", "glue"], environ, home)[-3:] == ["glue-docker", "-k", "glue"]


def test_the_image_keeps_its_own_spark_and_awsglue(glue_docker):
    runtime = glue_docker.requirements(include_dev=False)
    test = glue_docker.requirements(include_dev=True)
    assert not any(r.lower().startswith(("pyspark", "awsgluedataplanepython")) for r in runtime + test)
    assert "pandas==2.3.3" in runtime and "great-expectations==1.24.1" in runtime
    assert "chispa==0.12.0" in test and "pandas==2.3.3" in test


def test_every_flag_is_one_the_docker_client_knows(glue_docker, environ, home):
    if shutil.which("docker") is None:
        pytest.skip("no docker client")
    help_text = subprocess.run(["docker", "run", "--help"], capture_output=True, text=True, check=True).stdout
    known = set(re.findall(r"(?:^|\s)(-{1,2}[a-z][a-z-]*)", help_text))
    command = glue_docker.docker_command("job", [], environ, home)
    image_at = command.index(glue_docker.IMAGE)
    flags = [part for part in command[2:image_at] if part.startswith("-")]
    assert flags and set(flags) <= known, set(flags) - known


def test_print_shows_the_command_and_builds_nothing(tmp_path):
    made = [REPO / "build" / "glue-docker" / "requirements.txt", REPO / "dist" / "carve-0.1.0-py3-none-any.whl"]
    before = [p.stat().st_mtime_ns if p.exists() else None for p in made]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AWS_SECRET_ACCESS_KEY": "aws-secret-9f3a"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--print", "job", "--JOB_NAME", "x"], env=env,
                          capture_output=True, text=True, check=True)
    command = shlex.split(done.stdout)
    assert command[:2] == ["docker", "run"] and command[-3:] == ["glue-docker", "--JOB_NAME", "x"]
    assert "aws-secret-9f3a" not in done.stdout and "AWS_SECRET_ACCESS_KEY" in command
    assert [p.stat().st_mtime_ns if p.exists() else None for p in made] == before
