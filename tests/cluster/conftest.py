"""The local cluster for the tests under ``tests/cluster`` (``make cluster-test``).

One cluster for the tests of this folder (stopped before the other folders' tests run), started with the code of ``prognos cluster up`` in a temporary
folder on ports from ``PROGNOS_TEST_CLUSTER_PORT_BASE`` (29000), so a cluster a user
runs (19000) is not touched. At the end it is stopped and the test checks that no
process of it is left and every port is closed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from deploy.cluster import Cluster, ClusterConfig
    from deploy.stack import port_is_free

    base = os.environ.get("PROGNOS_TEST_CLUSTER_PORT_BASE") or "29000"
    config = ClusterConfig.from_env(
        {
            **os.environ,
            "PROGNOS_CLUSTER_DIR": str(tmp_path_factory.mktemp("cluster")),
            "PROGNOS_CLUSTER_PORT_BASE": base,
        }
    )
    cluster = Cluster(config)
    taken = [p for s in cluster.services for p in s.ports if not port_is_free(p)]
    if taken:
        pytest.fail(
            f"ports {taken} of the test cluster (base {base}) are in use: stop what holds "
            "them, or set PROGNOS_TEST_CLUSTER_PORT_BASE to another base"
        )
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()
        # The applications' folders keep their logs; the unpacked environments (~360 MB
        # an executor) go, so the test runs pytest keeps do not fill the disk.
        for unpacked in config.state_dir.glob("spark-worker-*/work/*/*/prognos-env"):
            shutil.rmtree(unpacked, ignore_errors=True)
        left = [s.name for s in cluster.services if s.running_pid() is not None]
        ports = [p for s in cluster.services for p in s.ports if not port_is_free(p)]
        assert not left and not ports, f"left running after down: {left}, ports {ports}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    from tests.cluster.harness import REPORT, REPORT_PATH

    if not REPORT.rows:
        return
    path = REPORT.save(REPORT_PATH)
    terminalreporter.write_sep("=", "cluster fault report")
    table = REPORT.markdown().split("\n", 1)[1]
    terminalreporter.write_line(
        "The stream job on the local cluster (prognos submit; 3 brokers, RF 3, min ISR 2; "
        f"checkpoint on HDFS), FD001 engines 1-{REPORT.settings.engines}:" + table
    )
    terminalreporter.write_line(f"saved to {path}")
