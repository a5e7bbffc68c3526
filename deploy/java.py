"""Find Java and check that it is recent enough for Kafka 4 and Spark 4 (Java 17+)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import JavaError

logger = logging.getLogger(__name__)

MIN_JAVA = 17
_FIX = (
    "Install a Java 17+ runtime (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`) "
    "and put it on PATH, or set JAVA_HOME to its folder."
)


@dataclass(frozen=True)
class Java:
    """A usable ``java`` executable and its feature version (17, 21, ...)."""

    executable: Path
    version: int
    description: str


def parse_java_version(text: str) -> int:
    """Return the feature version from ``java -version`` output.

    >>> parse_java_version('openjdk version "17.0.15" 2025-04-15')
    17
    >>> parse_java_version('java version "1.8.0_392"')
    8
    """
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        raise JavaError(
            f"could not read a version from `java -version`: {text.strip()[:200]!r}. {_FIX}"
        )
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    return major


def find_java() -> Java:
    """Locate Java (``JAVA_HOME`` first, then ``PATH``) and check it is 17 or newer.

    Raises:
        JavaError: Java is missing, does not run, or is older than 17; the message says how
            to fix it.
    """
    candidates: list[Path] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(Path(java_home) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path))
    if not candidates:
        raise JavaError(f"Java was not found (no JAVA_HOME, no `java` on PATH). {_FIX}")
    executable = candidates[0]
    if not executable.exists():
        raise JavaError(f"JAVA_HOME={java_home} has no bin/java. {_FIX}")
    try:
        result = subprocess.run(
            [str(executable), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaError(f"{executable} -version failed: {exc}. {_FIX}") from exc
    output = result.stderr + result.stdout
    version = parse_java_version(output)
    if version < MIN_JAVA:
        raise JavaError(
            f"{executable} is Java {version}; Kafka 4 and Spark 4 need Java {MIN_JAVA} or newer. {_FIX}"
        )
    first_line = output.strip().splitlines()[0] if output.strip() else f"java {version}"
    logger.debug("using %s (%s)", executable, first_line)
    return Java(executable=executable, version=version, description=first_line)
