"""The Redis output contract: every key and channel the stream job writes, and their formats.

This module is the one owner of what Prognos writes to Redis. The sink (writer), the job's
metrics and dead-letter counters, ``prognos status``, the subscribers (``tail``,
``follow``), the demo and the tests all take names and formats from here; no other module
spells a key.

Keys and channels (``P`` is the key prefix, ``prognos`` by default):

============================  ==============================================================
``P:alerts``                  Redis Stream of alert events (``XADD ... MAXLEN ~ N``); each
                              entry has the fields :data:`STREAM_FIELDS`, ``event`` holding
                              the JSON event (:class:`AlertEvent`)
``P:alerts:severity:SEV``     pub/sub channel per severity (``warning``, ``critical``)
``P:alerts:device:ID``        pub/sub channel per device
``P:risk``                    hash: device id -> latest risk
``P:risk:rank``               sorted set: device ids scored by latest risk (the fleet
                              summary's highest risk and count at risk in O(log n))
``P:device:ID``               hash :data:`DEVICE_FIELDS`: the device's latest window and the
                              alert policy's state
``P:history:ID``              list of the device's last :data:`HISTORY_LENGTH` scored
                              windows, oldest first, each ``"<window end ms> <risk>"``
                              (:func:`parse_history`; the dashboard's risk over time)
``P:lifecycle:ID``            list of the device's last :data:`LIFECYCLE_LENGTH` alert
                              events (JSON, oldest first): its alerts' lifecycle
``P:drift``                   hash: input drift, ``psi:SENSOR`` -> population stability
                              index of the fleet's recent windows, ``drifting`` (sensors,
                              comma-separated), ``windows``, ``threshold``, ``updated_ms``
``P:drift:devices``           hash: device id -> ``"SENSOR Z"``, devices whose recent
                              windows sit far from the training mean
``P:drift:notices``           Redis Stream (field ``notice``) and pub/sub channel of drift
                              notices (:class:`DriftNotice`)
``P:model``                   hash: the model the job is to score with (:class:`ModelEntry`,
                              ``prognos model promote`` / ``rollback`` write it; the job
                              switches to it at its next batch)
``P:model:history``           list of promotions, refusals, switches and rollbacks (JSON,
                              newest first, the last :data:`MODEL_HISTORY_LENGTH`)
``P:model:recent``            list of recent model inputs (packed ``K x F`` float32), a
                              sample the promotion's shadow scoring reads
``P:open``                    set of devices with an open alert
``P:fleet``                   hash: the fleet summary (:class:`FleetSummary`)
``P:metrics``                 hash: the running job's figures (:class:`JobMetrics`)
``P:deadletters``             hash: ``field/rule`` -> readings dead-lettered for it
``P:deadletters:counted``     hash: query id -> the last batch whose dead letters were
                              counted (makes a replayed batch count nothing)
``P:smoke:RUN:values``        ``prognos smoke`` only: hash ``partition:offset`` -> payload
``P:smoke:RUN:deliveries``    ``prognos smoke`` only: hash ``partition:offset`` -> writes
============================  ==============================================================

The alert event's JSON form carries ``schema`` (:data:`SCHEMA_VERSION`). Fields may be
added without changing it (readers ignore unknown fields); a change that would break a
reader raises it, and a reader refuses events of a newer schema than it knows.

Example:

    >>> keys = Keys("plant-7")
    >>> keys.alerts, keys.device("pump-1"), keys.severity_channel("critical")
    ('plant-7:alerts', 'plant-7:device:pump-1', 'plant-7:alerts:severity:critical')
    >>> event = AlertEvent.from_json(
    ...     '{"schema": 1, "event_id": "e1", "alert_id": "e1", "kind": "opened", '
    ...     '"device_id": "pump-1", "severity": "warning", "risk": 0.71, "threshold": 0.5, '
    ...     '"window_start_ms": 0, "window_end_ms": 600000, "opened_window_end_ms": 600000, '
    ...     '"model_version": "1.0.0", "provider": "CPUExecutionProvider", "top_features": []}'
    ... )
    >>> event.kind, event.risk, AlertEvent.from_json(event.to_json()) == event
    ('opened', 0.71, True)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal, TypeVar, get_args

from stream.errors import AlertFormatError

__all__ = [
    "DEFAULT_PREFIX",
    "DEVICE_FIELDS",
    "HISTORY_LENGTH",
    "KINDS",
    "LIFECYCLE_LENGTH",
    "MODEL_HISTORY_LENGTH",
    "MODEL_RECENT_LENGTH",
    "SCHEMA_VERSION",
    "SEVERITIES",
    "STREAM_FIELDS",
    "AlertEvent",
    "DriftNotice",
    "FleetSummary",
    "JobMetrics",
    "Keys",
    "Kind",
    "ModelEntry",
    "Severity",
    "TopFeature",
    "dead_letter_reason",
    "history_entry",
    "parse_history",
]

DEFAULT_PREFIX: Final = "prognos"
SCHEMA_VERSION: Final = 1
#: Scored windows kept per device in ``P:history:ID`` (a week of 20-minute windows).
HISTORY_LENGTH: Final = 500
#: Alert events kept per device in ``P:lifecycle:ID``.
LIFECYCLE_LENGTH: Final = 50
#: Entries kept in ``P:model:history`` and inputs in ``P:model:recent``.
MODEL_HISTORY_LENGTH: Final = 200
MODEL_RECENT_LENGTH: Final = 512

Kind = Literal["opened", "updated", "resolved"]
Severity = Literal["warning", "critical"]
KINDS: tuple[Kind, ...] = get_args(Kind)
SEVERITIES: tuple[Severity, ...] = get_args(Severity)

#: Fields of each entry of the alert stream ``P:alerts``, in the order they are written.
STREAM_FIELDS: Final = ("event", "event_id", "alert_id", "kind", "device_id", "severity", "risk")
#: Fields of a device's hash ``P:device:ID``.
DEVICE_FIELDS: Final = (
    "last_window_end",  # end of the last window applied (ms); the sink's compare-and-set
    "state",  # the alert policy's state, JSON (stream.alerts.DeviceState)
    "risk",
    "window_end",
    "model_version",
    "provider",
    "coverage",  # share of the model's sensors in the latest window
)


def _glob_escape(text: str) -> str:
    """Escape Redis glob characters so a key prefix matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True)
class Keys:
    """Every Redis key and channel name under one key prefix.

    Attributes:
        prefix: the key prefix (``PROGNOS_KEY_PREFIX``, ``prognos``); the stream job, its
            readers and the Redis ACL of the secure profile must agree on it.
    """

    prefix: str = DEFAULT_PREFIX

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def alerts(self) -> str:
        """The alert stream."""
        return self._key("alerts")

    def severity_channel(self, severity: str) -> str:
        """The pub/sub channel of one severity."""
        return self._key("alerts", "severity", severity)

    def device_channel(self, device_id: str) -> str:
        """The pub/sub channel of one device."""
        return self._key("alerts", "device", device_id)

    def device_channel_pattern(self, device_glob: str) -> str:
        """A ``PSUBSCRIBE`` pattern over the device channels (the prefix matched literally)."""
        return f"{_glob_escape(self.prefix)}:alerts:device:{device_glob}"

    @property
    def risk(self) -> str:
        """Hash: device id -> latest risk."""
        return self._key("risk")

    @property
    def risk_rank(self) -> str:
        """Sorted set: device ids by latest risk."""
        return self._key("risk", "rank")

    def device(self, device_id: str) -> str:
        """Hash of one device (:data:`DEVICE_FIELDS`)."""
        return self._key("device", device_id)

    @property
    def device_key_head(self) -> str:
        """What every device hash's key starts with (to scan them)."""
        return self._key("device", "")

    def history(self, device_id: str) -> str:
        """List of one device's recent ``"<window end ms> <risk>"`` entries."""
        return self._key("history", device_id)

    def lifecycle(self, device_id: str) -> str:
        """List of one device's recent alert events (JSON)."""
        return self._key("lifecycle", device_id)

    @property
    def drift(self) -> str:
        """Hash: the fleet's input drift per sensor."""
        return self._key("drift")

    @property
    def drift_devices(self) -> str:
        """Hash: devices far from the training distribution -> sensor and distance."""
        return self._key("drift", "devices")

    @property
    def drift_notices(self) -> str:
        """Stream and pub/sub channel of drift notices."""
        return self._key("drift", "notices")

    @property
    def model(self) -> str:
        """Hash: the model the job is to score with (:class:`ModelEntry`)."""
        return self._key("model")

    @property
    def model_history(self) -> str:
        """List: promotions, refusals, switches, rollbacks (JSON, newest first)."""
        return self._key("model", "history")

    @property
    def model_recent(self) -> str:
        """List: a sample of recent model inputs (packed float32 ``K x F``)."""
        return self._key("model", "recent")

    @property
    def open(self) -> str:
        """Set of devices with an open alert."""
        return self._key("open")

    @property
    def fleet(self) -> str:
        """Hash: the fleet summary (:class:`FleetSummary`)."""
        return self._key("fleet")

    @property
    def metrics(self) -> str:
        """Hash: the running job's figures (:class:`JobMetrics`)."""
        return self._key("metrics")

    @property
    def deadletters(self) -> str:
        """Hash: ``field/rule`` -> dead-lettered readings."""
        return self._key("deadletters")

    @property
    def deadletters_counted(self) -> str:
        """Hash: query id -> the last batch whose dead letters were counted."""
        return self._key("deadletters", "counted")

    def smoke_values(self, run: str) -> str:
        """``prognos smoke``: hash ``partition:offset`` -> the record's payload."""
        return self._key("smoke", run, "values")

    def smoke_deliveries(self, run: str) -> str:
        """``prognos smoke``: hash ``partition:offset`` -> how often it was written."""
        return self._key("smoke", run, "deliveries")

    @property
    def pattern(self) -> str:
        """A glob matching every key and channel under the prefix (ACLs, clean-up)."""
        return f"{_glob_escape(self.prefix)}:*"


def history_entry(window_end_ms: int, risk: float) -> str:
    """One entry of ``P:history:ID``.

    >>> history_entry(600000, 0.25)
    '600000 0.25'
    """
    return f"{int(window_end_ms)} {float(risk)!r}"


def parse_history(raw: Any) -> list[tuple[int, float]]:
    """``LRANGE P:history:ID 0 -1`` as ``(window end ms, risk)`` pairs; bad entries skipped.

    >>> parse_history([b"600000 0.25", "1200000 0.5", b"junk"])
    [(600000, 0.25), (1200000, 0.5)]
    """
    out = []
    for entry in raw or []:
        end, _, risk = _text(entry).partition(" ")
        try:
            out.append((int(end), float(risk)))
        except ValueError:
            continue
    return out


def dead_letter_reason(field_name: str, rule: str) -> str:
    """The ``P:deadletters`` field counting one rule's dead letters.

    >>> dead_letter_reason("temperature", "range")
    'temperature/range'
    """
    return f"{field_name}/{rule}"


# -- the alert event ----------------------------------------------------------------------


@dataclass(frozen=True)
class TopFeature:
    """One of the features that drove a window's risk (furthest from normal first).

    Attributes:
        name: feature name, ``<sensor>__<statistic>`` (e.g. ``s2__mean``).
        value: the feature's value in the scored window; ``None`` when it was missing.
        z: standard score against the training data (sign says above or below normal).
        normal_low: lower bound of the normal range (mean - 2 sd), when known.
        normal_high: upper bound of the normal range (mean + 2 sd), when known.
    """

    name: str
    value: float | None
    z: float
    normal_low: float | None = None
    normal_high: float | None = None


@dataclass(frozen=True)
class AlertEvent:
    """One alert lifecycle event: what the stream job writes and subscribers read.

    Attributes:
        event_id: id of this event, stable across replays (use it to drop duplicates).
        alert_id: id of the alert the event belongs to (same for opened/updated/resolved).
        kind: ``opened``, ``updated`` or ``resolved``.
        device_id: the device.
        severity: ``warning`` or ``critical``.
        risk: the window's failure risk in [0, 1].
        threshold: the alert threshold in force.
        window_start_ms: start of the scored window (epoch ms, event time).
        window_end_ms: end of the scored window (epoch ms, event time).
        opened_window_end_ms: end of the window that opened the alert.
        model_version: version of the model that scored the window.
        provider: ONNX Runtime execution provider that scored it.
        top_features: the features furthest from normal, strongest first.
        coverage: share of the model's sensors present in the window (0 to 1); ``None``
            in events written before it was added.
    """

    schema_version: ClassVar[int] = SCHEMA_VERSION

    event_id: str
    alert_id: str
    kind: Kind
    device_id: str
    severity: Severity
    risk: float
    threshold: float
    window_start_ms: int
    window_end_ms: int
    opened_window_end_ms: int
    model_version: str
    provider: str
    top_features: tuple[TopFeature, ...] = field(default=())
    coverage: float | None = None

    @property
    def window_end(self) -> datetime:
        """End of the scored window as an aware UTC datetime."""
        return datetime.fromtimestamp(self.window_end_ms / 1000, tz=UTC)

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict, with its ``schema`` version."""
        # Field by field, not dataclasses.asdict (its deep copy was most of the sink's
        # cost of an event); the unit tests hold it to asdict's output.
        return {
            "event_id": self.event_id,
            "alert_id": self.alert_id,
            "kind": self.kind,
            "device_id": self.device_id,
            "severity": self.severity,
            "risk": self.risk,
            "threshold": self.threshold,
            "window_start_ms": self.window_start_ms,
            "window_end_ms": self.window_end_ms,
            "opened_window_end_ms": self.opened_window_end_ms,
            "model_version": self.model_version,
            "provider": self.provider,
            "top_features": [
                {
                    "name": f.name,
                    "value": f.value,
                    "z": f.z,
                    "normal_low": f.normal_low,
                    "normal_high": f.normal_high,
                }
                for f in self.top_features
            ],
            "coverage": self.coverage,
            "schema": SCHEMA_VERSION,
        }

    def to_json(self) -> str:
        """One compact JSON line, keys sorted: the ``event`` field and pub/sub payload."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> AlertEvent:
        """Parse an event as the stream job writes it.

        Unknown fields are ignored, so events with fields added later still parse.

        Raises:
            AlertFormatError: not JSON, a field is missing or has the wrong type, or the
                event's schema is newer than this reader knows.
        """
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise AlertFormatError(f"alert event is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise AlertFormatError(f"alert event is a {type(data).__name__}, not an object")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertEvent:
        """Build from the decoded JSON object; see :meth:`from_json`."""
        schema = data.get("schema", 1)  # events written before the version was added are 1
        if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
            raise AlertFormatError(f"alert field 'schema' is {schema!r}, expected an integer >= 1")
        if schema > SCHEMA_VERSION:
            raise AlertFormatError(
                f"alert event has schema {schema}, this reader knows up to {SCHEMA_VERSION}: "
                "upgrade Prognos where the alerts are read"
            )
        kind = _field(data, "kind", str)
        if kind not in KINDS:
            raise AlertFormatError(f"alert field 'kind' is {kind!r}, expected one of {KINDS}")
        severity = _field(data, "severity", str)
        if severity not in SEVERITIES:
            raise AlertFormatError(
                f"alert field 'severity' is {severity!r}, expected one of {SEVERITIES}"
            )
        raw_features = data.get("top_features") or []
        if not isinstance(raw_features, list):
            raise AlertFormatError("alert field 'top_features' is not a list")
        return cls(
            event_id=_field(data, "event_id", str),
            alert_id=_field(data, "alert_id", str),
            kind=kind,  # checked against KINDS above
            device_id=_field(data, "device_id", str),
            severity=severity,  # checked against SEVERITIES above
            risk=_field(data, "risk", float),
            threshold=_field(data, "threshold", float),
            window_start_ms=_field(data, "window_start_ms", int),
            window_end_ms=_field(data, "window_end_ms", int),
            opened_window_end_ms=_field(data, "opened_window_end_ms", int),
            model_version=_field(data, "model_version", str),
            provider=_field(data, "provider", str),
            top_features=tuple(_feature(f, i) for i, f in enumerate(raw_features)),
            coverage=_optional_float(data, "coverage", "alert"),
        )


def _field(data: Mapping[str, Any], name: str, kind: type[Any], where: str = "alert") -> Any:
    if name not in data or data[name] is None:
        raise AlertFormatError(f"{where} field {name!r} is missing")
    value = data[name]
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AlertFormatError(f"{where} field {name!r} is {value!r}, expected a number")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise AlertFormatError(f"{where} field {name!r} is {value!r}, expected an integer")
        return value
    if not isinstance(value, kind):
        raise AlertFormatError(f"{where} field {name!r} is {value!r}, expected {kind.__name__}")
    return value


def _optional_float(data: Mapping[str, Any], name: str, where: str) -> float | None:
    if data.get(name) is None:
        return None
    value: float = _field(data, name, float, where)
    return value


def _feature(data: Any, index: int) -> TopFeature:
    where = f"top_features[{index}]"
    if not isinstance(data, dict):
        raise AlertFormatError(f"alert field {where} is not an object")
    return TopFeature(
        name=_field(data, "name", str, where),
        value=_optional_float(data, "value", where),
        z=_field(data, "z", float, where),
        normal_low=_optional_float(data, "normal_low", where),
        normal_high=_optional_float(data, "normal_high", where),
    )


# -- the drift notice ----------------------------------------------------------------------


@dataclass(frozen=True)
class DriftNotice:
    """Input drift started or ended for some sensors, fleet-wide (not a failure alert).

    Attributes:
        kind: ``started`` or ``ended``.
        sensors: sensor -> population stability index when noticed.
        windows: how many recent windows of the fleet the index is over.
        window_end_ms: end of the newest window scored when noticed (event time).
        model_version: the model whose training distribution is the reference.
        noticed_ms: when (wall clock, epoch ms).
    """

    kind: Literal["started", "ended"]
    sensors: Mapping[str, float]
    windows: int
    window_end_ms: int
    model_version: str
    noticed_ms: int

    def to_json(self) -> str:
        data = {**asdict(self), "sensors": dict(self.sensors), "type": "drift"}
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> DriftNotice:
        """Raises AlertFormatError when it is not a drift notice."""
        try:
            data = json.loads(text)
            kind = data["kind"]
            if kind not in ("started", "ended") or not isinstance(data["sensors"], dict):
                raise ValueError(kind)
            return cls(
                kind=kind,
                sensors={str(k): float(v) for k, v in data["sensors"].items()},
                windows=int(data["windows"]),
                window_end_ms=int(data["window_end_ms"]),
                model_version=str(data["model_version"]),
                noticed_ms=int(data["noticed_ms"]),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise AlertFormatError(f"not a drift notice: {exc}") from None


# -- the model registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelEntry:
    """A model the job scores (or is to score) with: the hash ``P:model``.

    Attributes:
        version: the model's version (its metadata's ``model_version``).
        path: the model folder, absolute.
        sha256: the ONNX file's checksum, verified again before the job switches.
        generation: raised by each promotion and rollback; the job switches when it changes.
        since_ms: when it was promoted (or the job started with it), epoch ms.
        previous: the entry it replaced (JSON), what ``rollback`` returns to; "" for none.
    """

    version: str
    path: str
    sha256: str
    generation: int = 0
    since_ms: int = 0
    previous: str = ""

    def to_hash(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> ModelEntry | None:
        """The entry from ``HGETALL P:model`` (or its JSON); None when there is none."""
        if not raw:
            return None
        data = _decoded(raw)
        try:
            return cls(
                version=data["version"],
                path=data["path"],
                sha256=data["sha256"],
                generation=int(data.get("generation", "0")),
                since_ms=int(data.get("since_ms", "0")),
                previous=data.get("previous", ""),
            )
        except (KeyError, ValueError) as exc:
            raise AlertFormatError(f"model entry is malformed: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelEntry | None:
        return cls.from_hash(json.loads(text)) if text else None


# -- hashes ------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decoded(mapping: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in mapping.items()}


@dataclass
class JobMetrics:
    """The running job's figures, one batch's and totals: the hash ``P:metrics``.

    The job rewrites the whole hash after each batch; ``prognos status`` and the demo
    read it. Each attribute is one field of the hash.
    """

    batch_id: int = -1
    input_rows: int = 0
    #: Records read since the job started (readings and dead letters).
    input_rows_total: int = 0
    input_rows_per_s: float = 0.0
    batch_ms: int = 0
    dropped_by_watermark: int = 0
    dropped_by_watermark_total: int = 0
    dead_letters_total: int = 0
    windows_scored: int = 0
    windows_scored_total: int = 0
    alerts_total: int = 0
    scoring_ms: float = 0.0
    sink_ms: float = 0.0
    redis_ms: float = 0.0
    #: Mean share of the model's sensors present in the batch's windows (1.0: all).
    coverage: float = 1.0
    #: Windows scored with a coverage under the job's ``min_coverage``, since the start.
    low_coverage_windows_total: int = 0
    provider: str = ""
    #: Records behind the readings topic's end offsets (all partitions) at the last batch.
    kafka_lag_records: int = 0
    updated_ms: int = 0

    def to_hash(self) -> dict[str, str]:
        """The fields as Redis stores them (strings)."""
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> JobMetrics | None:
        """The figures from ``HGETALL P:metrics``; ``None`` when the job wrote none yet.

        A field that is missing or does not parse keeps its default (an older job may
        have written fewer fields).
        """
        return _from_hash(cls, raw)


@dataclass
class FleetSummary:
    """The fleet at a glance: the hash ``P:fleet``, rewritten by the sink each batch.

    Attributes:
        devices: devices with a scored window.
        open_alerts: devices with an open alert.
        at_risk: devices whose latest risk is at or above the threshold.
        max_risk: the highest latest risk (absent before the first window).
        max_risk_device: the device with ``max_risk``.
        updated_ms: when the sink wrote it (epoch ms, wall clock).
    """

    devices: int = 0
    open_alerts: int = 0
    at_risk: int = 0
    max_risk: float | None = None
    max_risk_device: str | None = None
    updated_ms: int = 0

    def to_hash(self) -> dict[str, str]:
        """The fields as Redis stores them; unknown ones (``None``) are left out."""
        return {k: str(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> FleetSummary | None:
        """The summary from ``HGETALL P:fleet``; ``None`` before the first scored window."""
        return _from_hash(cls, raw)


_H = TypeVar("_H", JobMetrics, FleetSummary)


def _from_hash(cls: type[_H], raw: Mapping[Any, Any]) -> _H | None:
    if not raw:
        return None
    data = _decoded(raw)
    values: dict[str, Any] = {}
    for f in fields(cls):
        text = data.get(f.name)
        if text is None:
            continue
        kind = str(f.type)  # the annotation's text: "int", "float | None", "str" ...
        try:
            if kind.startswith("int"):
                values[f.name] = int(float(text))
            elif kind.startswith("float"):
                values[f.name] = float(text)
            else:
                values[f.name] = text
        except ValueError:
            continue  # keeps its default, as documented
    return cls(**values)
