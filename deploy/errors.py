"""Errors raised while setting up and running the local stack.

Hierarchy::

    DeployError                 root of this package; ``retriable`` says if a retry can help
    ├── ConfigError             a PROGNOS_* setting is malformed (names it and the fix)
    ├── JavaError               Java missing or older than 17
    ├── JarResolutionError      jars could not be resolved (offline, Maven Central down)
    ├── ConnectorMismatchError  Spark's Kafka connector does not match pyspark
    ├── PortInUseError          a port the stack needs is taken by another process
    ├── ServiceStartError       a service did not become healthy in time
    ├── RedisMissingError       no redis-server binary and none could be installed
    └── NotRunningError         an operation needs a running stack and there is none

Every message names the problem and the fix; the CLI prints it without a traceback.
"""

from __future__ import annotations


class DeployError(Exception):
    """Root of the errors raised by :mod:`deploy`."""

    retriable = False


class ConfigError(DeployError):
    """A setting of the stack is malformed; the message names the variable and the fix."""


class JavaError(DeployError):
    """Java is missing, unusable or older than the version Kafka and Spark need."""


class JarResolutionError(DeployError):
    """Jars could not be resolved from Maven Central or the offline sources."""

    retriable = True


class ConnectorMismatchError(DeployError):
    """The Kafka connector jar on the classpath was built for another Spark or Scala."""


class PortInUseError(DeployError):
    """A port the stack needs is already used by a process the stack did not start."""


class ServiceStartError(DeployError):
    """A service did not come up healthy in time; the message carries its log's tail."""

    retriable = True


class RedisMissingError(DeployError):
    """No ``redis-server`` binary was found and it could not be installed."""


class NotRunningError(DeployError):
    """The operation needs a running stack, and none is running."""
