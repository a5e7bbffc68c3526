"""The stream job's Prometheus metrics, served by the driver at ``/metrics``.

``prognos stream --metrics-port PORT`` starts :class:`PrometheusMetrics`' HTTP server
(``prometheus_client``'s own) before the query reads anything. The figures are the ones
:class:`stream.runner.JobProgress` keeps (and publishes to ``P:metrics``), in Prometheus'
conventions: base units, ``_total`` counters, ``_seconds`` histograms, labels of few
values (a dead letter's rule, an alert event's kind and severity; never a device id).

Counters count what this process did since it started, as Prometheus expects of a
counter (``rate()`` and ``increase()`` handle the reset when the job restarts). A
replayed batch whose windows and dead letters were written before adds nothing.

=====================================  =========  =========================================
metric                                 type       meaning
=====================================  =========  =========================================
``prognos_readings_total``             counter    records read from the readings topic
                                                  (valid readings and dead letters)
``prognos_dead_letters_total``         counter    dead letters published, by ``rule``
``prognos_late_readings_total``        counter    readings dropped as later than the
                                                  watermark
``prognos_windows_scored_total``       counter    windows scored and written
``prognos_alert_events_total``         counter    alert events written, by ``kind`` and
                                                  ``severity``
``prognos_low_coverage_windows_total`` counter    windows scored with fewer of the model's
                                                  sensors than ``--min-coverage``
``prognos_batch_duration_seconds``     histogram  a micro-batch, trigger to commit
``prognos_scoring_seconds``            histogram  a batch's model time in the workers
``prognos_sink_seconds``               histogram  a batch's alert policy and Redis writes
``prognos_kafka_lag_records``          gauge      records behind the end offsets, all
                                                  partitions, at the last batch
``prognos_open_alerts``                gauge      devices with an open alert
``prognos_fleet_devices``              gauge      devices with a scored window
``prognos_sensor_coverage_ratio``      gauge      mean share of the model's sensors in the
                                                  last batch's windows
``prognos_last_batch_id``              gauge      the last completed batch
``prognos_last_batch_timestamp_seconds`` gauge    when it completed (Unix time)
``prognos_model_info``                 info       ``version``, ``provider``, ``sha256``
``prognos_drift_psi``                  gauge      by ``sensor``: PSI of the fleet's recent
                                                  windows against training (stream.drift)
``prognos_drift_sensors``              gauge      sensors whose drift is sustained
``prognos_drift_devices``              gauge      devices far from the training distribution
``prognos_drift_notices_total``        counter    drift notices, by ``kind``
=====================================  =========  =========================================
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.exposition import start_http_server

from stream.errors import ConfigError
from stream.runner import kafka_lag

if TYPE_CHECKING:
    from stream.contract import DriftNotice
    from stream.drift import DriftMonitor

logger = logging.getLogger(__name__)

__all__ = ["PrometheusMetrics", "kafka_lag"]

_BATCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_PART_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusMetrics:
    """The job's metrics in their own registry; :meth:`serve` exposes them over HTTP.

    Args:
        registry: where the metrics live (a new one by default, so two jobs in one
            process, as in the tests, do not collide).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # No ``*_created`` series beside each counter and histogram: they double the
        # series a scrape carries and Prometheus does not use them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.readings = Counter(
            "prognos_readings",
            "Records read from the readings topic (readings and dead letters)",
            registry=r,
        )
        self.dead_letters = Counter(
            "prognos_dead_letters",
            "Dead letters published, by the rule they broke",
            ["rule"],
            registry=r,
        )
        self.late = Counter(
            "prognos_late_readings", "Readings dropped as later than the watermark", registry=r
        )
        self.windows = Counter(
            "prognos_windows_scored", "Windows scored and written to Redis", registry=r
        )
        self.events = Counter(
            "prognos_alert_events",
            "Alert events written, by kind and severity",
            ["kind", "severity"],
            registry=r,
        )
        self.low_coverage = Counter(
            "prognos_low_coverage_windows",
            "Windows scored with fewer of the model's sensors than --min-coverage",
            registry=r,
        )
        self.batch = Histogram(
            "prognos_batch_duration_seconds",
            "A micro-batch, trigger to commit",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.scoring = Histogram(
            "prognos_scoring_seconds",
            "A batch's model time in the Python workers",
            buckets=_PART_BUCKETS,
            registry=r,
        )
        self.sink = Histogram(
            "prognos_sink_seconds",
            "A batch's alert policy and Redis writes",
            buckets=_PART_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "prognos_kafka_lag_records",
            "Records behind the readings topic's end offsets (all partitions) at the last batch",
            registry=r,
        )
        self.open_alerts = Gauge("prognos_open_alerts", "Devices with an open alert", registry=r)
        self.devices = Gauge("prognos_fleet_devices", "Devices with a scored window", registry=r)
        self.coverage = Gauge(
            "prognos_sensor_coverage_ratio",
            "Mean share of the model's sensors in the last batch's windows",
            registry=r,
        )
        self.last_batch = Gauge("prognos_last_batch_id", "The last completed batch", registry=r)
        self.last_batch_time = Gauge(
            "prognos_last_batch_timestamp_seconds",
            "When the last batch completed (Unix time)",
            registry=r,
        )
        self.model = Info("prognos_model", "The model scoring the stream", registry=r)
        self.drift_psi = Gauge(
            "prognos_drift_psi",
            "Population stability index of the fleet's recent windows against training, by sensor",
            ["sensor"],
            registry=r,
        )
        self.drift_sensors = Gauge(
            "prognos_drift_sensors", "Sensors whose input drift is sustained", registry=r
        )
        self.drift_devices = Gauge(
            "prognos_drift_devices",
            "Devices whose recent windows sit far from the training distribution",
            registry=r,
        )
        self.drift_notices = Counter(
            "prognos_drift_notices", "Drift notices, by kind (started, ended)", ["kind"], registry=r
        )
        self.coverage.set(1.0)
        self.last_batch.set(-1)
        self._server: Any = None
        self._thread: Any = None
        self.port: int | None = None

    # -- updates (JobProgress calls these) -------------------------------------------------
    def model_loaded(self, version: str, provider: str, sha256: str) -> None:
        self.model.info({"version": version, "provider": provider, "sha256": sha256})

    def batch_written(
        self,
        windows: int,
        event_counts: Mapping[tuple[str, str], int],
        scoring_s: float,
        sink_s: float,
        coverage: float | None,
        low_coverage: int,
        open_alerts: int | None,
        devices: int | None,
    ) -> None:
        self.windows.inc(windows)
        for (kind, severity), n in event_counts.items():
            self.events.labels(kind=kind, severity=severity).inc(n)
        self.scoring.observe(scoring_s)
        self.sink.observe(sink_s)
        if coverage is not None:
            self.coverage.set(coverage)
        self.low_coverage.inc(low_coverage)
        if open_alerts is not None:
            self.open_alerts.set(open_alerts)
        if devices is not None:
            self.devices.set(devices)

    def drift_updated(self, monitor: DriftMonitor, notices: Sequence[DriftNotice]) -> None:
        for sensor, value in zip(monitor.sensors, monitor.psi, strict=True):
            if value == value:  # not NaN: enough windows seen
                self.drift_psi.labels(sensor=sensor).set(float(value))
        self.drift_sensors.set(len(monitor.drifting))
        self.drift_devices.set(len(monitor.devices))
        for notice in notices:
            self.drift_notices.labels(kind=notice.kind).inc()

    def dead_lettered(self, rules: Mapping[str, int]) -> None:
        for rule, n in rules.items():
            self.dead_letters.labels(rule=rule).inc(n)

    def progress(self, report: Mapping[str, Any], late: int) -> None:
        """One progress report of the main query (each is folded in once)."""
        self.readings.inc(int(report.get("numInputRows", 0) or 0))
        self.late.inc(late)
        self.batch.observe(int((report.get("durationMs") or {}).get("triggerExecution", 0)) / 1000)
        lag = kafka_lag(report.get("sources") or [])
        if lag is not None:
            self.lag.set(lag)
        self.last_batch.set(int(report.get("batchId", -1)))
        self.last_batch_time.set(time.time())

    # -- the endpoint ------------------------------------------------------------------------
    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host:port`` (port 0: any free port); returns the port.

        Raises:
            ConfigError: the port is in use or cannot be bound; the message says what to do.
        """
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"metrics port {host}:{port} is in use by another process: choose another "
                    "with --metrics-port (PROGNOS_METRICS_PORT), or stop the process holding it "
                    f"(`ss -ltnp 'sport = :{port}'` names it)"
                ) from exc
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; choose another "
                "--metrics-port or --metrics-host"
            ) from exc
        self.port = int(self._server.server_address[1])
        logger.info("Prometheus metrics at http://%s:%d/metrics", host, self.port)
        return self.port

    def close(self) -> None:
        """Stop serving (the job stopped)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
