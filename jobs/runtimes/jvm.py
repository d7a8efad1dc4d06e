"""carve's Java functions (transforms/jvm/*.java) compiled into carve-transforms.jar.

The jar is built once per version of the sources and of Spark, with the machine's javac
against PySpark's own jars, into carve's cache folder ($XDG_CACHE_HOME/carve, else
~/.cache/carve). The local runtime builds it when it is missing;
`carve deploy` uploads it for Glue's --extra-jars. CARVE_TRANSFORMS_JAR names a jar built
elsewhere (where there is no JDK).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pyspark

from transforms.errors import SetupError
from transforms.jvm import JAR_NAME, SOURCES


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "carve"


def jar_path() -> Path:
    configured = os.environ.get("CARVE_TRANSFORMS_JAR")
    if configured:
        return Path(configured)
    digest = hashlib.sha256(pyspark.__version__.encode())
    for source in SOURCES:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return cache_dir() / f"{Path(JAR_NAME).stem}-{digest.hexdigest()[:16]}.jar"


def javac() -> str:
    found = shutil.which("javac")
    if found:
        return found
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "javac").exists():
        return str(Path(home) / "bin" / "javac")
    raise SetupError(
        f"carve compiles its Java functions ({JAR_NAME}) once, and needs a JDK's javac for it, which is not on "
        "PATH or in $JAVA_HOME/bin: install one (Debian: apt-get install -y openjdk-17-jdk-headless), or set "
        "CARVE_TRANSFORMS_JAR to a jar built on another machine (`python -m jobs.runtimes.jvm` prints its path)"
    )


def ensure_jar() -> Path:
    """The jar's path, compiled first when this version of it is not built yet."""
    path = jar_path()
    if path.is_file():
        return path
    if os.environ.get("CARVE_TRANSFORMS_JAR"):
        raise SetupError(f"CARVE_TRANSFORMS_JAR names {path}, which is not a file")
    classpath = str(Path(pyspark.__file__).parent / "jars" / "*")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="carve-javac-") as tmp:
        classes = Path(tmp) / "classes"
        command = [javac(), "--release", "8", "-Xlint:-options", "-nowarn", "-encoding", "UTF-8",
                   "-cp", classpath, "-d", str(classes), *map(str, SOURCES)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SetupError(f"compiling carve's Java functions failed:\n{done.stderr.strip()}")
        partial = Path(tmp) / JAR_NAME
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: carve\n\n")
            for file in sorted(classes.rglob("*.class")):
                jar.write(file, file.relative_to(classes).as_posix())
        # Another process may build the same jar at once: each renames its own, complete one.
        staged = path.with_suffix(f".{os.getpid()}.tmp")  # beside the jar: the rename is atomic
        shutil.move(str(partial), str(staged))
        os.replace(staged, path)
    return path


if __name__ == "__main__":
    try:
        print(ensure_jar())
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
