"""Run a fleet: publish its readings to Kafka and/or record them to Parquet, at a pace.

Pace (:class:`Pace`): ``realtime`` (one simulated second per second), ``xN`` (N simulated
seconds per second) or ``max`` (as fast as possible). The recording is a folder with
``readings.parquet`` (one row per reading: ``device_id``, ``event_time`` (UTC, ms),
``seq``, ``machine_type``, ``load``, ``regime``, one column per sensor, null for a dropout
or a sensor the type lacks) and ``ground_truth.parquet`` (one row per machine life:
:class:`simulator.fleet.Life`). Ground truth is never inside a reading. A fleet with
turbofans records ``setting1``..``setting3`` and ``s1``..``s21`` (:data:`TURBOFAN_COLUMNS`)
too; one of turbofans only records just those (no ``load``, ``regime`` or
:data:`SENSOR_COLUMNS`), so it replays like a C-MAPSS file.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ingest.publish import publish
from ingest.schema import Reading
from simulator.config import CMAPSS_SENSORS, CMAPSS_SETTINGS
from simulator.errors import ConfigError, RecordError
from simulator.fleet import Fleet, Life

if TYPE_CHECKING:
    from ingest.producer import ReadingProducer

logger = logging.getLogger(__name__)

__all__ = ["SENSOR_COLUMNS", "TURBOFAN_COLUMNS", "Pace", "RunReport", "run_fleet"]

SENSOR_COLUMNS: Final = (
    "vibration",
    "bearing_temp",
    "winding_temp",
    "motor_current",
    "speed",
    "pressure",
    "flow",
)
TURBOFAN_COLUMNS: Final = (*CMAPSS_SETTINGS, *CMAPSS_SENSORS)
_ROW_GROUP: Final = 50_000


@dataclass(frozen=True)
class Pace:
    """How fast simulated time runs: ``speed`` simulated seconds per second, None = max."""

    speed: float | None

    @classmethod
    def parse(cls, text: str) -> Pace:
        """``realtime``, ``xN`` (e.g. ``x60``) or ``max``.

        Raises:
            ConfigError: anything else.
        """
        text = text.strip().lower()
        if text == "max":
            return cls(None)
        if text == "realtime":
            return cls(1.0)
        if text.startswith("x"):
            try:
                speed = float(text[1:])
            except ValueError:
                speed = 0.0
            if speed > 0:
                return cls(speed)
        raise ConfigError(
            f"--rate {text!r}: use realtime, xN (e.g. x60 for one simulated minute per second) or max"
        )


@dataclass(frozen=True)
class RunReport:
    """What a run did."""

    steps: int
    readings: int
    dead_letters: int
    seconds: float
    interrupted: bool

    @property
    def rate(self) -> float:
        """Readings per second of wall time."""
        return self.readings / self.seconds if self.seconds > 0 else 0.0


class _Recorder:
    """Writes readings and ground truth as Parquet, in row groups."""

    def __init__(self, folder: Path, types: tuple[str, ...]) -> None:
        import pyarrow as pa

        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordError(
                f"--record {folder}: cannot create the folder ({exc.strerror})"
            ) from None
        self.folder = folder
        columns: list[tuple[str, Any]] = [
            ("device_id", pa.string()),
            ("event_time", pa.timestamp("ms", tz="UTC")),
            ("seq", pa.int64()),
            ("machine_type", pa.string()),
        ]
        self.classic = any(t != "turbofan" for t in types)
        self.values: tuple[str, ...] = ()
        if self.classic:
            columns += [("load", pa.float64()), ("regime", pa.int32())]
            self.values += SENSOR_COLUMNS
        if "turbofan" in types:
            self.values += TURBOFAN_COLUMNS
        columns += [(name, pa.float64()) for name in self.values]
        self.schema = pa.schema(columns)
        self.columns: dict[str, list[Any]] = {name: [] for name in self.schema.names}
        self.writer: Any = None
        self.rows = 0

    def add(self, reading: Reading) -> None:
        cols = self.columns
        cols["device_id"].append(reading.device_id)
        cols["event_time"].append(reading.event_time)
        cols["seq"].append(reading.seq)
        cols["machine_type"].append(reading.metadata.get("type"))
        settings = reading.settings
        if self.classic:
            cols["load"].append(settings.get("load"))
            regime = settings.get("regime")
            cols["regime"].append(None if regime is None else int(regime))
        sensors = reading.sensors
        for name in self.values:
            cols[name].append(sensors[name] if name in sensors else settings.get(name))
        if len(cols["seq"]) >= _ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.columns["seq"]:
            return
        table = pa.table(self.columns, schema=self.schema)
        try:
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.folder / "readings.parquet", self.schema)
            self.writer.write_table(table)
        except OSError as exc:
            raise RecordError(f"writing {self.folder / 'readings.parquet'} failed: {exc}") from None
        self.rows += table.num_rows
        self.columns = {name: [] for name in self.schema.names}

    def close(self, lives: list[Life]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._flush()
        if self.writer is None:
            pq.write_table(self.schema.empty_table(), self.folder / "readings.parquet")
        else:
            self.writer.close()
        names = [f.name for f in fields(Life)]
        data = {n: [getattr(life, n) for life in lives] for n in names}
        time_type = pa.timestamp("ms", tz="UTC")
        schema = pa.schema(
            [
                (
                    n,
                    time_type
                    if n.endswith("_time")
                    else pa.int32()
                    if n == "life"
                    else pa.float64()
                    if n == "exponent"
                    else pa.string(),
                )
                for n in names
            ]
        )
        pq.write_table(pa.table(data, schema=schema), self.folder / "ground_truth.parquet")
        logger.info("recorded %d readings and %d lives in %s", self.rows, len(lives), self.folder)


def run_fleet(
    fleet: Fleet,
    *,
    steps: int | None = None,
    duration_s: float | None = None,
    pace: Pace = Pace(None),
    producer: ReadingProducer | None = None,
    record: Path | None = None,
    on_step: Any = None,
) -> RunReport:
    """Run ``fleet`` for ``steps`` steps or ``duration_s`` simulated seconds (else until Ctrl-C).

    Pacing, Ctrl-C and the counts are :func:`ingest.publish.publish`'s, as for a replay.

    Args:
        fleet: the fleet.
        steps: how many steps.
        duration_s: simulated seconds (converted to steps); ignored when ``steps`` is given.
        pace: how fast simulated time runs against the wall clock.
        producer: publishes each reading (validated; rule breakers go to the dead-letter topic).
        record: a folder to write ``readings.parquet`` and ``ground_truth.parquet`` into.
        on_step: called with the step number after each step (progress).

    Returns:
        A :class:`RunReport`; ``interrupted`` is True after Ctrl-C, which ends the run
        cleanly (the recording is closed; the caller flushes the producer).
    """
    if steps is None and duration_s is not None:
        steps = max(1, round(duration_s / fleet.config.step_s))
    recorder = _Recorder(record, fleet.config.types) if record is not None else None
    send = producer.send if producer is not None else None
    step_s = fleet.config.step_s
    readings = 0

    def step(number: int) -> None:
        nonlocal readings
        for reading in fleet.step():
            if send is not None:
                send(reading)
            if recorder is not None:
                recorder.add(reading)
            readings += 1
        if on_step is not None:
            on_step(number + 1)

    run = publish(
        itertools.count() if steps is None else range(steps),
        step,
        speed=pace.speed,
        clock=lambda number: number * step_s,
        producer=producer,
        close=(lambda: recorder.close(fleet.ground_truth())) if recorder is not None else None,
        label="simulation",
        unit="steps",
    )
    return RunReport(
        run.items, readings - run.dead_lettered, run.dead_lettered, run.seconds, run.interrupted
    )
