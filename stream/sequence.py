"""Per-device windows and sequences: one stateful operator over the valid readings.

:func:`sequences` groups the readings by :data:`STATE_BUCKETS` hash buckets of the device
id and runs :class:`FleetWindows` under ``transformWithStateInPandas`` in event-time mode:
Spark calls it once per bucket and batch, with all of the bucket's readings. A bucket's
devices are spread over :data:`STATE_SLICES` slices, each one entry of the bucket's map
state (RocksDB, checkpointed with the query) holding its devices' states, read and
written when one of its devices has readings (a bucket's timer reads the slices whose
devices are due and writes those that changed: a window the watermark passed closed, a
device forgotten after its time to live). A
group per device (``applyInPandasWithState``, until state layout v3) cost a pandas
conversion, a state round trip and an output frame per device and batch, and a map entry
per device two state-server calls per device and batch, so a batch's cost grew with the
number of devices in it rather than with its readings (docs/performance.md). For each
device the state keeps:

* the readings of the device's open windows: event time, ``seq`` and the model's sensor
  values (standardised per operating regime where the model has regimes);
* the end of its last closed window;
* its last K - 1 closed windows' feature vectors, normalised for the model (float32: what
  the next sequences hold; a window's raw vector is only emitted when it closes).

A tumbling window ``[start, end)`` closes when the watermark reaches ``end``, the rule of
Spark's window aggregation in append mode, or earlier, in the batch where the device's own
newest reading passes ``end`` by the watermark's delay: the watermark after that batch is
at least as far (it is taken over every device), so no reading Spark still accepts can fall
into the window, and its alert comes one batch (one trigger) sooner. A device that stops
reporting has its open windows closed by its bucket's event-time timer, and is forgotten
once silent for the state's time to live (:class:`FleetWindows`), so the state of a fleet
whose devices come and go stays bounded. A window's feature vector is
computed by :func:`models.features.compute_windows_features`, the closing windows of all
the devices of a bucket in a batch in one call (:meth:`DeviceWindows.advance_many`), with
the code of :func:`models.features.compute_window_features`, the
function the model was trained with, so training and serving share one definition. Once
the device has K windows, each newly closed window emits the K-window sequence the model reads (oldest first),
normalised for the model (:func:`models.features.normalise`; no normalisation is left in
the scoring stage), with the raw feature vector of the newest window beside it (the alert's
"top features" show raw values). Both travel as packed little-endian bytes (float32 for the
sequence, float64 for the raw vector), so they cross from pandas to the JVM and on to the
scoring stage's Arrow batches as one copy per row, not value by value.
Windows without readings do not exist (a device that is silent for a while continues its
sequence).

Readings that broke a rule pass through the same operator, so the job parses and validates
each record once. :func:`route` gives them the device id :data:`DEAD_LETTER_KEY` (no valid
device has an empty id), which :func:`sequences` puts in bucket :data:`DEAD_LETTER_BUCKET`,
and a null event time (so they neither move the watermark nor are dropped as late), with the dead-letter columns
:data:`DEAD_LETTER_COLUMNS` packed into one JSON column (:data:`PACKED_DEAD_LETTER`); the
operator emits them unchanged and keeps no state for them, :func:`sequences` unpacks them
after it, and the scoring stage and the sink pass them on to the dead-letter topic.

The operator's input is six columns and its output seven, because pyspark converts each
group's slice to pandas column by column, at a cost per column and group whatever the
column holds (docs/performance.md): the bucket, ``device_id``, ``event_time`` (the
watermark's column, which Spark wants in the operator's input), ``seq``, one ``values``
array (event time in ms, the model's sensors and, with regimes, the settings) and the
packed dead letter.

Readings behind the watermark are dropped by Spark before they reach the operator and
counted in the query's ``numRowsDroppedByWatermark``. A reading whose ``seq`` is already
among the device's open readings (or earlier in the same batch) is a duplicate and is
dropped, so a producer's retry never changes a window's statistics.

One operator whose state travels with the data is cheaper than separate stateful steps
(docs/performance.md); :data:`STATE_LAYOUT` is recorded in the checkpoint's fingerprint
(:mod:`stream.checkpoint`), so a checkpoint of another layout is refused with the reason.
"""

from __future__ import annotations

import binascii
import pickle
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from pyspark.sql.streaming.stateful_processor import StatefulProcessor

from models.features import (
    FeatureSpec,
    NormStats,
    compute_windows_features,
    normalise,
    normalise_readings,
)

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

    from models.scorer import Scorer
    from stream.scoring import ScoringSpec

#: How many hash buckets the devices' state is grouped in (part of :data:`STATE_LAYOUT`:
#: a device's bucket must not change under a checkpoint). Spark calls the operator once per
#: bucket and batch, so this bounds the per-call cost whatever the fleet's size; it also
#: bounds the operator's parallelism (more than enough for ``spark.sql.shuffle.partitions``
#: of a few hundred).
STATE_BUCKETS = 64

#: How many slices a bucket's devices are spread over (:func:`slice_of`; part of
#: :data:`STATE_LAYOUT`). A slice is one entry of the bucket's map state holding its devices'
#: states, read and written whole when one of them has readings: one state-server call each
#: way per slice and batch instead of two per device present. 64 x 16 slices: about 20
#: devices a slice at 20,000 devices, 100 at 100,000; a batch rewrites every slice it
#: touches whole (docs/performance.md, "State slices").
STATE_SLICES = 16

#: Recorded in the checkpoint's ``job.json``; a change of state layout needs a new checkpoint.
#: v3: the dead letters travel with the main query (a v2 checkpoint has a dead-letter query
#: of its own, whose uncommitted records a v3 job would never read).
#: v2-b64: the last K - 1 windows are kept normalised, as float32 (v1: K raw float64 vectors,
#: twice the bytes through the state server for the same emitted sequences).
#: -s16: a map entry per slice of a bucket's devices (:data:`STATE_SLICES`), not per device:
#: two state-server calls per slice and batch instead of two per device. The buckets and
#: slices are part of it: a device's bucket and slice must not change under a checkpoint.
#: -text: a slice's value is text (base64 of its pickle, :func:`pack_slice`), not binary.
#: -dues: a device's state keeps its oldest open window's end, and a bucket's ``dues``
#: value state each slice's earliest due time (:class:`FleetWindows`).
#: -keys: the buckets' keys are :data:`BUCKET_KEYS` (they were 0-63).
STATE_LAYOUT = f"fleet-windows-v2-b{STATE_BUCKETS}-s{STATE_SLICES}-text-dues-keys"

#: The buckets' grouping keys, one a bucket (part of :data:`STATE_LAYOUT`). Spark sends a
#: key to shuffle partition ``pmod(hash(key), partitions)`` (Murmur3, seed 42): keys 0-63
#: put 37 buckets in one of 2 partitions and 27 in the other (11-21 of 4), and the
#: operator's stage waits for its largest task. Each of these keys (the smallest
#: non-negative ints that do it) has its own ``pmod(hash(key), 64)``, so every
#: power-of-two number of partitions up to 64 gets as many buckets as the next.
BUCKET_KEYS = (
    0, 1, 2, 4, 5, 6, 7, 10, 12, 13, 15, 16, 17, 20, 21, 22,
    24, 25, 28, 29, 30, 32, 33, 35, 36, 37, 38, 39, 41, 43, 44, 49,
    50, 52, 54, 57, 62, 64, 65, 67, 69, 73, 74, 75, 76, 80, 87, 98,
    107, 109, 116, 138, 143, 148, 177, 183, 186, 189, 191, 192, 198, 205,
    216, 239,
)  # fmt: skip

#: The bucket of the rows that broke a rule (a device's bucket key is >= 0).
DEAD_LETTER_BUCKET = -1

#: The group key of the rows that broke a rule (the parse rules refuse an empty device id).
DEAD_LETTER_KEY = ""

#: The dead-letter columns, null on every row but a dead letter's: the original key and
#: bytes, the first broken rule's field, rule and reason, and where the record was read.
DEAD_LETTER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("dl_key", "binary"),
    ("dl_value", "binary"),
    ("dl_field", "string"),
    ("dl_rule", "string"),
    ("dl_reason", "string"),
    ("dl_source", "string"),
)


#: The operator's one column for :data:`DEAD_LETTER_COLUMNS`: a JSON object of them (the
#: bytes base64-encoded, a null left out), null on a valid reading's row.
PACKED_DEAD_LETTER = "dead_letter"

#: The JSON fields of :data:`PACKED_DEAD_LETTER`, in :data:`DEAD_LETTER_COLUMNS` order: each
#: column's name without its ``dl_`` prefix, and its kind.
_PACKED_FIELDS = tuple((name.removeprefix("dl_"), kind) for name, kind in DEAD_LETTER_COLUMNS)


def dead_letter_fields() -> list[Any]:
    """:data:`DEAD_LETTER_COLUMNS` as nullable Spark fields."""
    from pyspark.sql.types import BinaryType, StringType, StructField

    kinds = {"binary": BinaryType(), "string": StringType()}
    return [StructField(name, kinds[kind], True) for name, kind in DEAD_LETTER_COLUMNS]


def output_schema() -> StructType:
    """The operator's rows (:func:`sequences` unpacks :data:`PACKED_DEAD_LETTER` after it)."""
    from pyspark.sql.types import BinaryType, LongType, StringType, StructField, StructType

    # A window's row has every window column and a null dead letter; a dead letter's row
    # has device_id DEAD_LETTER_KEY, null window columns and its packed dead letter.
    return StructType(
        [
            StructField("device_id", StringType(), False),
            StructField("window_start_ms", LongType(), True),
            StructField("window_end_ms", LongType(), True),
            StructField("n_readings", LongType(), True),
            # K x F normalised values, oldest window first, always finite, as packed
            # little-endian float32 (SEQUENCE_DTYPE): bytes cross pandas -> Arrow -> JVM ->
            # Arrow with one copy each, where an array<float> went through a Python list of
            # K x F numpy scalars in pyspark's converter and an element-wise Arrow writer.
            StructField("sequence", BinaryType(), True),
            # The newest window's raw features as packed little-endian float64
            # (LAST_WINDOW_DTYPE); NaN where a statistic had no values.
            StructField("last_window", BinaryType(), True),
            StructField(PACKED_DEAD_LETTER, StringType(), True),
        ]
    )


def sequences_schema() -> StructType:
    """The rows of :func:`sequences`: :func:`output_schema` with :data:`DEAD_LETTER_COLUMNS`
    in place of :data:`PACKED_DEAD_LETTER`."""
    from pyspark.sql.types import StructType

    kept = [f for f in output_schema().fields if f.name != PACKED_DEAD_LETTER]
    return StructType([*kept, *dead_letter_fields()])


#: A device's state, the tuple :meth:`DeviceWindows.advance` takes and returns: the end of
#: its last closed window (ms, None before the first) and, as little-endian bytes, its open
#: readings' event ms and ``seq`` (int64) and sensor values (float64, ``[n, sensors]``) and
#: its last K - 1 closed windows normalised (float32 :data:`SEQUENCE_DTYPE`, ``[n, F]``),
#: and the end of its oldest open window (ms, None when nothing is open: when the watermark
#: must close it, kept so that a slice's due time needs no arrays decoded).
#: Bytes pickle and move as one copy each; a slice (:func:`pack_slice`) holds its devices'
#: tuples, so their size is part of what every batch moves to the state server and back.
STATE_FIELDS = ("closed_end_ms", "open_ms", "open_seq", "open_values", "normalised", "open_end_ms")


_I8 = np.dtype("<i8")
_F8 = np.dtype("<f8")

#: How the ``sequence`` column packs its K x F values (see :func:`output_schema`).
SEQUENCE_DTYPE = np.dtype("<f4")
#: How the ``last_window`` column packs its F values.
LAST_WINDOW_DTYPE = _F8


class DeviceWindows:
    """One device's windows: its stored state and new readings in, its new state and the
    K-window sequences of the windows that closed out (:meth:`advance`).

    :class:`FleetWindows` calls :meth:`advance_many` once per bucket and batch with the
    devices present, and on its timer with the devices whose open window the watermark
    passed. State is the tuple of :data:`STATE_FIELDS`: arrays as little-endian bytes.
    """

    def __init__(self, spec: FeatureSpec, norm: NormStats, lateness_ms: int | None = None) -> None:
        self.spec = spec
        self.lateness_ms = lateness_ms
        self.norm = norm
        self.regimes = norm.regimes
        self.k = spec.sequence_length
        self.f = spec.n_features
        self.s = len(spec.sensors)
        self.window_ms = round(spec.window_seconds * 1000)
        self.origin_ms = round(spec.origin_seconds * 1000)

    @property
    def width(self) -> int:
        """The length of a reading's ``values`` array (event ms, sensors, settings)."""
        return 1 + self.s + (len(self.regimes.settings) if self.regimes is not None else 0)

    def window_end_ms(self, event_ms: np.ndarray) -> np.ndarray:
        """End of the tumbling window holding each event time (ms), aligned like Spark's."""
        index = np.floor_divide(event_ms - self.origin_ms, self.window_ms)
        ends: np.ndarray = self.origin_ms + (index + 1) * self.window_ms
        return ends

    def readings(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Event ms and the model's sensor values (standardised per regime where the model
        has regimes) of a ``values`` matrix (:func:`_stack`), all devices' rows at once."""
        ms = block[:, 0].astype(np.int64)  # exact: |ms| < 2**53
        values = block[:, 1 : 1 + self.s]
        if self.regimes is not None:
            values = normalise_readings(values, block[:, 1 + self.s :], self.regimes)
        return ms, values

    def advance(
        self,
        stored: tuple[Any, ...] | None,
        ms: np.ndarray,
        seq: np.ndarray,
        values: np.ndarray,
        watermark: int,
    ) -> tuple[tuple[Any, ...], Emitted | None]:
        """The device's next state and what closed (the state's ``open_end_ms`` is when it
        must be called again: its oldest open window's end; None when nothing is open).

        Args:
            stored: the device's state (:data:`STATE_FIELDS`), None for a new device.
            ms, seq, values: its new readings (event ms, ``seq``, sensor values from
                :meth:`readings`), in arrival order; empty on a timer.
            watermark: Spark's watermark for this batch (ms).
        """
        done = self.advance_many([stored], np.array([len(ms)]), ms, seq, values, watermark)
        return done.states[0], done.emitted

    def advance_many(
        self,
        stored: list[tuple[Any, ...] | None],
        counts: np.ndarray,
        ms: np.ndarray,
        seq: np.ndarray,
        values: np.ndarray,
        watermark: int,
    ) -> Advanced:
        """:meth:`advance` for several devices at once, in one pass of numpy calls over all
        their readings rather than a pass per device: the numbers are the same as device by
        device (a window's features depend on its readings only).

        Args:
            stored: each device's state (None: a new device).
            counts: how many new readings each device has; ``ms``, ``seq`` and ``values``
                hold them device after device, each device's in arrival order.
            watermark: Spark's watermark for this batch (ms).
        """
        n, s = len(stored), self.s
        counts = np.asarray(counts, dtype=np.intp)
        kept = [st if st is not None else _NEW_DEVICE for st in stored]
        closed_end = np.array(
            [st[0] if st[0] is not None else _NOTHING_CLOSED for st in kept], dtype=np.int64
        )
        old_n = np.array([len(st[1]) for st in kept], dtype=np.intp) // _I8.itemsize
        old_dev = np.repeat(np.arange(n), old_n)
        new_dev = np.repeat(np.arange(n), counts)

        # Every device's stored open readings and then its new ones, device after device.
        open_ms = np.frombuffer(b"".join(st[1] for st in kept), _I8)
        open_seq = np.frombuffer(b"".join(st[2] for st in kept), _I8)
        open_values = np.frombuffer(b"".join(st[3] for st in kept), _F8).reshape(-1, s)
        dev = old_dev
        if len(ms):
            ms = np.asarray(ms, dtype=_I8)
            seq = np.asarray(seq, dtype=_I8)
            # A new reading is a duplicate when its device already has its seq (stored, or
            # earlier in the batch): a stable sort by device and seq keeps the first.
            all_dev = np.concatenate([old_dev, new_dev])
            all_seq = np.concatenate([open_seq, seq])
            order = np.lexsort((all_seq, all_dev))  # stable: the first of equal ones first
            by_dev, by_seq = all_dev[order], all_seq[order]
            same = (by_dev[1:] == by_dev[:-1]) & (by_seq[1:] == by_seq[:-1])
            keep = np.ones(len(all_dev), dtype=bool)
            keep[order[1:][same]] = False
            # Behind a window already closed: late. (closed_end is a window's end, so a
            # reading is in a later window exactly when it is at or after it.)
            keep = keep[len(old_dev) :] & (ms >= closed_end[new_dev])
            order = np.argsort(np.concatenate([old_dev, new_dev[keep]]), kind="stable")
            dev = np.concatenate([old_dev, new_dev[keep]])[order]
            open_ms = np.concatenate([open_ms, ms[keep]])[order]
            open_seq = np.concatenate([open_seq, seq[keep]])[order]
            open_values = np.concatenate([open_values, np.asarray(values, _F8)[keep]])[order]

        bounds = _offsets(np.bincount(dev, minlength=n))
        has_open = bounds[1:] > bounds[:-1]
        limit = np.full(n, watermark, dtype=np.int64)
        if self.lateness_ms is not None and has_open.any():
            # The device's own readings are past these windows by the watermark delay.
            # Spark's watermark after this batch is at least as far (it is the maximum
            # event time over all devices, less the same delay), so any reading that could
            # still fall into them will be dropped as late: close them now, not one batch
            # later.
            newest = np.maximum.reduceat(open_ms, bounds[:-1][has_open])
            limit[has_open] = np.maximum(watermark, newest - self.lateness_ms)
        window_end = self.window_end_ms(open_ms)
        closing = window_end <= limit[dev]

        # The readings that stay open, and each device's oldest open window.
        stay = ~closing
        stay_dev = dev[stay]
        stay_end = window_end[stay]
        stay_bounds = _offsets(np.bincount(stay_dev, minlength=n))
        still_open = stay_bounds[1:] > stay_bounds[:-1]
        open_end: list[int | None] = [None] * n
        if still_open.any():
            oldest = np.minimum.reduceat(stay_end, stay_bounds[:-1][still_open])
            for i, end in zip(np.flatnonzero(still_open).tolist(), oldest.tolist(), strict=True):
                open_end[i] = end
        normalised: list[bytes] = [st[4] for st in kept]
        last_closed: list[int | None] = [st[0] for st in kept]
        emitted = None
        emitted_by = np.empty(0, dtype=np.intp)
        if closing.any():
            emitted, emitted_by = self._close(
                dev, open_ms, open_values, window_end, closing, normalised, last_closed
            )

        stay_ms = open_ms[stay].astype(_I8, copy=False).tobytes()
        stay_seq = open_seq[stay].astype(_I8, copy=False).tobytes()
        stay_values = np.ascontiguousarray(open_values[stay], _F8).tobytes()
        row = s * _F8.itemsize
        cut = stay_bounds.tolist()
        states = [
            (
                last_closed[i],
                stay_ms[cut[i] * 8 : cut[i + 1] * 8],
                stay_seq[cut[i] * 8 : cut[i + 1] * 8],
                stay_values[cut[i] * row : cut[i + 1] * row],
                normalised[i],
                open_end[i],
            )
            for i in range(n)
        ]
        return Advanced(states, emitted_by, emitted)

    def _close(
        self,
        dev: np.ndarray,
        open_ms: np.ndarray,
        open_values: np.ndarray,
        window_end: np.ndarray,
        closing: np.ndarray,
        normalised: list[bytes],
        last_closed: list[int | None],
    ) -> tuple[Emitted | None, np.ndarray]:
        """Close the windows of the readings marked ``closing`` (devices' indices ``dev``):
        their features, each closing device's last K - 1 normalised windows and last closed
        window's end (updated in ``normalised`` and ``last_closed``), and the sequences of
        those that have K windows with the index of the device each belongs to."""
        f, k = self.f, self.k
        # The closing readings grouped by device, then window, oldest first (a stable sort
        # keeps each window's readings in their order).
        rows = np.flatnonzero(closing)
        rows = rows[np.lexsort((window_end[rows], dev[rows]))]
        r_dev, r_end = dev[rows], window_end[rows]
        first = np.flatnonzero(np.r_[True, (r_dev[1:] != r_dev[:-1]) | (r_end[1:] != r_end[:-1])])
        w_dev, w_end = r_dev[first], r_end[first]
        w_count = np.diff(np.r_[first, len(rows)])
        features = compute_windows_features(
            self.spec, open_ms[rows] / 1000.0, open_values[rows], first
        )
        z = normalise(features, self.norm).astype(SEQUENCE_DTYPE, copy=False)

        # Each closing device's history: its stored normalised windows, then the new ones,
        # one segment of ``history`` per device.
        devices, d_first, d_new = np.unique(w_dev, return_index=True, return_counts=True)
        d_old = np.array([len(normalised[i]) for i in devices.tolist()], dtype=np.intp)
        d_old //= f * SEQUENCE_DTYPE.itemsize
        d_len = d_old + d_new
        d_start = _offsets(d_len)[:-1]
        history = np.empty((int(d_len.sum()), f), dtype=SEQUENCE_DTYPE)
        old_at = np.repeat(d_start, d_old) + _ranks(d_old)
        history[old_at] = np.frombuffer(
            b"".join(normalised[i] for i in devices.tolist()), SEQUENCE_DTYPE
        ).reshape(-1, f)
        # Window q of a device's history (the stored ones first) emits the K windows ending
        # at it once there are K.
        position = np.repeat(d_old, d_new) + _ranks(d_new)  # in the device's history
        at = np.repeat(d_start, d_new) + position
        history[at] = z
        emits = position >= k - 1

        # Each closing device keeps its last K - 1 (none if K = 1) and its newest end.
        packed = history.tobytes()
        row = f * SEQUENCE_DTYPE.itemsize
        d_end = d_start + d_len
        keep_from = np.maximum(d_start, d_end - (k - 1))
        newest = w_end[d_first + d_new - 1]
        for i, a, b, end in zip(
            devices.tolist(), keep_from.tolist(), d_end.tolist(), newest.tolist(), strict=True
        ):
            normalised[i] = packed[a * row : b * row]
            last_closed[i] = end
        if not emits.any():
            return None, np.empty(0, dtype=np.intp)
        # K consecutive rows of each emitting window's device history, one block each.
        windows = history[at[emits, None] + np.arange(1 - k, 1)]
        sequences = windows.tobytes()
        raw = features[emits].astype(LAST_WINDOW_DTYPE).tobytes()
        seq_len, raw_len = k * row, f * LAST_WINDOW_DTYPE.itemsize
        e = int(emits.sum())
        out_end = w_end[emits].astype(np.int64)
        return Emitted(
            out_end - self.window_ms,
            out_end,
            w_count[emits].astype(np.int64),
            [sequences[i * seq_len : (i + 1) * seq_len] for i in range(e)],
            [raw[i * raw_len : (i + 1) * raw_len] for i in range(e)],
        ), w_dev[emits]


#: A new device's state: nothing closed, nothing open, no windows.
_NEW_DEVICE: tuple[Any, ...] = (None, b"", b"", b"", b"", None)
#: ``closed_end_ms`` for a device that closed nothing yet: no reading is behind it.
_NOTHING_CLOSED = np.iinfo(np.int64).min


def _offsets(lengths: np.ndarray) -> np.ndarray:
    """Where each of consecutive segments of these lengths starts, and the total last."""
    offsets: np.ndarray = np.r_[0, np.cumsum(lengths)].astype(np.intp)
    return offsets


def _ranks(lengths: np.ndarray) -> np.ndarray:
    """0, 1, ... within each of consecutive segments of these lengths."""
    offsets = _offsets(lengths)
    ranks: np.ndarray = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    return ranks


class Emitted(NamedTuple):
    """Closed windows that emit a sequence, as the columns of :func:`output_schema`."""

    start_ms: np.ndarray
    end_ms: np.ndarray
    n_readings: np.ndarray
    sequence: list[bytes]
    last_window: list[bytes]


class Advanced(NamedTuple):
    """What :meth:`DeviceWindows.advance_many` returns: each device's new state, and the
    windows that emit a sequence (None: none) with the index of each one's device (the
    devices in their order, each one's windows oldest first)."""

    states: list[tuple[Any, ...]]
    emitted_by: np.ndarray
    emitted: Emitted | None


def _window_rows(devices: np.ndarray, emitted: Emitted) -> pd.DataFrame:
    """Output rows (:func:`output_schema`) of closed windows, ``devices`` their ids."""
    import pandas as pd

    return pd.DataFrame(
        {
            "device_id": devices,
            "window_start_ms": emitted.start_ms,
            "window_end_ms": emitted.end_ms,
            "n_readings": emitted.n_readings,
            "sequence": emitted.sequence,
            "last_window": emitted.last_window,
            PACKED_DEAD_LETTER: [None] * len(devices),
        }
    )


def _slice_key_schema() -> StructType:
    from pyspark.sql.types import IntegerType, StructField, StructType

    return StructType([StructField("slice", IntegerType(), False)])


def slice_schema() -> StructType:
    """A slice's value: its devices' states, as text (:func:`pack_slice`)."""
    from pyspark.sql.types import StringType, StructField, StructType

    return StructType([StructField("states", StringType(), False)])


def slice_of(device: str) -> int:
    """A device's slice within its bucket, ``0 <= slice < STATE_SLICES`` (CRC-32 of the id:
    the same in every process, unlike ``hash``, which Python salts per process)."""
    return zlib.crc32(device.encode()) % STATE_SLICES


def pack_slice(states: dict[str, tuple[Any, ...]]) -> str:
    """A slice's devices (device id -> its :data:`STATE_FIELDS` tuple) as the text its map
    entry holds: their pickle, base64-encoded. Only the job writes them, into its own
    checkpoint.

    Text, not binary: Spark's state server hands a binary value to Python through its JVM
    pickler, which turns the bytes into a Latin-1 string one character at a time and
    encodes that as UTF-8 (Python decodes it back the same way), where ASCII text crosses
    as one copy each side. With every device's history in its slice, that conversion was
    the largest part of the state server's time (docs/performance.md, "Slices as text");
    base64 costs a third more bytes and two C passes in the worker."""
    return binascii.b2a_base64(pickle.dumps(states, protocol=5), newline=False).decode("ascii")


def unpack_slice(packed: str) -> dict[str, tuple[Any, ...]]:
    """:func:`pack_slice` back: device id -> its state tuple."""
    states: dict[str, tuple[Any, ...]] = pickle.loads(binascii.a2b_base64(packed))
    return states


#: A due time before any watermark: every slice is read by the next sweep.
_EVERY_SLICE_DUE = -(2**62)


class FleetWindows(StatefulProcessor):
    """The ``transformWithStateInPandas`` processor: one bucket of devices per grouping key.

    Spark groups the readings by :func:`bucket_of` (:data:`STATE_BUCKETS` keys), so it calls
    this once per bucket and batch with all the bucket's readings in a few frames, where a
    group per device cost a pandas conversion, a state round trip and an output frame per
    device (docs/performance.md). The bucket's devices are spread over
    :data:`STATE_SLICES` slices (:func:`slice_of`), each an entry of a map state
    (``slices``: slice -> the packed states of its devices, :func:`pack_slice`): a batch
    reads and writes the slices of the devices present in it, one state-server call each
    way per slice, where an entry per device cost two calls per device and batch, the
    largest part of a batch at 20,000 devices (docs/performance.md).

    A device is due for a call without readings at the end of its oldest open window, or,
    with nothing open, at the end of its last closed window plus the state's time to live
    (``ttl_ms``). A value state (``dues``) keeps each slice's earliest due time, and the
    bucket has one event-time timer, at the earliest of them. When it fires, the slices
    due are swept (only those: a slice whose devices' windows their own readings closed is
    not read): windows the watermark passed are closed (and emit their sequences), devices
    silent for longer than the time to live are forgotten, and the next timer is set.
    """

    def __init__(
        self,
        spec: FeatureSpec,
        norm: NormStats,
        lateness_ms: int | None = None,
        ttl_ms: int | None = None,
        scoring: ScoringSpec | None = None,
    ) -> None:
        self.windows = DeviceWindows(spec, norm, lateness_ms)
        self.ttl_ms = ttl_ms
        self.scoring = scoring
        self.scorer: Scorer | None = None
        self.scored = 0

    def init(self, handle: Any) -> None:
        # Spark also calls this in the driver, planning the query (to learn the state
        # variables), where a model shipped to the executors is not: the scorer is loaded
        # where the first window closes, once a task, so each batch scores with the model
        # the driver points at.
        self.scorer = None
        self.scored = 0  # windows scored in this task (one in SAMPLE_EVERY is sampled)
        self.handle = handle
        self.slices = handle.getMapState("slices", _slice_key_schema(), slice_schema())
        self.dues = handle.getValueState("dues", dues_schema())

    def handleInputRows(
        self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any
    ) -> Iterator[pd.DataFrame]:
        import pandas as pd

        chunks = [frame for frame in rows if len(frame)]
        if not chunks:
            return
        data = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
        if key[0] == DEAD_LETTER_BUCKET:
            yield self._dead_letters(data)
            return
        op = self.windows
        watermark = int(timerValues.getCurrentWatermarkInMs())
        ids = data["device_id"].to_numpy(dtype=object)
        # By device, each device's readings in their order (a stable sort).
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        seq = data["seq"].to_numpy(dtype=np.int64)[order]
        ms, values = op.readings(_stack(data["values"], op.width)[order])
        firsts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        devices = ids[firsts]
        slices: dict[int, dict[str, tuple[Any, ...]]] = {}
        present: list[dict[str, tuple[Any, ...]]] = []
        stored: list[tuple[Any, ...] | None] = []
        for device in devices.tolist():
            part = slice_of(device)
            states = slices.get(part)
            if states is None:
                value = self.slices.getValue((part,))
                states = slices[part] = unpack_slice(value[0]) if value is not None else {}
            present.append(states)
            stored.append(states.get(device))
        counts = np.diff(np.r_[firsts, len(ids)])
        done = op.advance_many(stored, counts, ms, seq, values, watermark)
        for device, states, state in zip(devices.tolist(), present, done.states, strict=True):
            states[device] = state
        dues = self._load_dues()
        for part, states in slices.items():
            self.slices.updateValue((part,), (pack_slice(states),))
            dues[part] = self._slice_due(states)
        self._save_dues(dues, watermark)
        if done.emitted is not None:
            yield self._rows(devices[done.emitted_by], done.emitted)

    def handleExpiredTimer(
        self, key: Any, timerValues: Any, expiredTimerInfo: Any
    ) -> Iterator[pd.DataFrame]:
        op = self.windows
        watermark = int(timerValues.getCurrentWatermarkInMs())
        dues = self._load_dues()
        # The slices due (the others have nothing for the watermark to close or forget).
        stored: list[tuple[int, dict[str, tuple[Any, ...]]]] = []
        for part, due in enumerate(dues):
            if due is not None and due <= watermark:
                value = self.slices.getValue((part,))
                stored.append((part, unpack_slice(value[0]) if value is not None else {}))
        # The devices whose oldest open window the watermark passed close it, all at once.
        closing = [
            (part, device, state)
            for part, states in stored
            for device, state in states.items()
            if state[5] is not None and state[5] <= watermark
        ]
        nothing = np.empty(0, np.int64)
        done = op.advance_many(
            [state for *_, state in closing],
            np.zeros(len(closing), np.intp),
            nothing,
            nothing,
            np.empty((0, op.s), np.float64),
            watermark,
        )
        closed = {(p, d): state for (p, d, _), state in zip(closing, done.states, strict=True)}
        for part, states in stored:
            kept: dict[str, tuple[Any, ...]] = {}
            dirty = False
            for device, state in states.items():
                if (part, device) in closed:
                    state = closed[(part, device)]
                    dirty = True
                if state[5] is None and self._expired(state, watermark):
                    dirty = True
                    continue  # silent for longer than the time to live: forgotten
                kept[device] = state
            if dirty and kept:
                self.slices.updateValue((part,), (pack_slice(kept),))
            elif dirty:
                self.slices.removeKey((part,))
            dues[part] = self._slice_due(kept)
        self._save_dues(dues, watermark)
        if done.emitted is not None:
            ids = np.asarray([device for _, device, _ in closing], dtype=object)
            yield self._rows(ids[done.emitted_by], done.emitted)

    def _rows(self, devices: np.ndarray, emitted: Emitted) -> pd.DataFrame:
        """The output rows of closed windows: scored when the operator scores."""
        if self.scoring is None:
            return _window_rows(devices, emitted)
        from stream.scoring import load_scorer, scored_rows

        if self.scorer is None:
            self.scorer = load_scorer(self.scoring)
        rows = scored_rows(self.scorer, devices, emitted, self.scored)
        self.scored += len(rows)
        return rows

    def _dead_letters(self, data: pd.DataFrame) -> pd.DataFrame:
        if self.scoring is None:
            return _dead_letter_rows(data)
        from stream.scoring import dead_letter_rows

        return dead_letter_rows(data[PACKED_DEAD_LETTER].to_numpy(dtype=object))

    def _expired(self, state: tuple[Any, ...], watermark: int) -> bool:
        """Nothing open and the last closed window ended a time to live ago."""
        closed_end = state[0]
        return (
            self.ttl_ms is not None
            and closed_end is not None
            and closed_end + self.ttl_ms <= watermark
        )

    def _due(self, state: tuple[Any, ...]) -> int | None:
        """When the device needs a call without readings: its oldest open window's end, or
        (nothing open) when its time to live runs out."""
        if state[5] is not None:
            return int(state[5])
        closed_end = state[0]
        if self.ttl_ms is None or closed_end is None:
            return None
        return int(closed_end) + self.ttl_ms

    def _slice_due(self, states: dict[str, tuple[Any, ...]]) -> int | None:
        """The earliest due time of a slice's devices (None: none is ever due)."""
        dues = [d for state in states.values() if (d := self._due(state)) is not None]
        return min(dues) if dues else None

    def _load_dues(self) -> list[int | None]:
        """Each slice's earliest due time (None: empty, or nothing due).

        The due times of devices with nothing open depend on the time to live, which a
        restart on the same checkpoint may change: due times kept under another one mark
        every slice due now, so the next sweep reads them all and keeps new ones (a device
        silent for longer than the new time to live is then forgotten).
        """
        row = self.dues.get()
        if row is None:
            return [None] * STATE_SLICES
        dues, ttl_ms = row
        if ttl_ms != self.ttl_ms:
            return [_EVERY_SLICE_DUE] * STATE_SLICES
        return list(dues)

    def _save_dues(self, dues: list[int | None], watermark: int) -> None:
        """Keep ``dues`` and one timer, at the earliest of them.

        After a sweep every due time is past the watermark. In ``handleInputRows`` a slice
        it did not touch can be due at or behind it: the timer that made it so fires in
        this batch, after the input, and its sweep sets the next timer; the one set here
        (just past the watermark) only stands in for it should it not.
        """
        self.dues.update((dues, self.ttl_ms))
        due = min((d for d in dues if d is not None), default=None)
        if due is not None and due <= watermark:
            due = watermark + 1
        pending = [ms for ms in self.handle.listTimers() if ms > watermark]
        if pending == ([] if due is None else [due]):
            return
        for ms in pending:
            self.handle.deleteTimer(ms)
        if due is not None:
            self.handle.registerTimer(due)

    def close(self) -> None:
        pass


def dues_schema() -> StructType:
    """The ``dues`` value state: each slice's earliest due time (ms; null: none) and the
    time to live they were computed with (ms; null: none)."""
    from pyspark.sql.types import ArrayType, LongType, StructField, StructType

    return StructType(
        [
            StructField("due_ms", ArrayType(LongType(), True), False),
            StructField("ttl_ms", LongType(), True),
        ]
    )


def _dead_letter_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Output rows (:func:`output_schema`) for the dead letters in ``frame``."""
    import pandas as pd

    none = [None] * len(frame)
    return pd.DataFrame(
        {
            "device_id": DEAD_LETTER_KEY,
            "window_start_ms": none,
            "window_end_ms": none,
            "n_readings": none,
            "sequence": none,
            "last_window": none,
            PACKED_DEAD_LETTER: frame[PACKED_DEAD_LETTER].to_numpy(dtype=object),
        }
    )


def pack_dead_letter(*columns: Column) -> Column:
    """The values of :data:`DEAD_LETTER_COLUMNS` (in that order) as the JSON of
    :data:`PACKED_DEAD_LETTER`, the binary ones base64-encoded."""
    from pyspark.sql import functions as F

    parts = [
        (F.base64(column) if kind == "binary" else column).alias(name)
        for column, (name, kind) in zip(columns, _PACKED_FIELDS, strict=True)
    ]
    return F.to_json(F.struct(*parts))


def unpack_dead_letter(packed: Column) -> list[Column]:
    """:data:`DEAD_LETTER_COLUMNS` back from :data:`PACKED_DEAD_LETTER` (null -> nulls)."""
    from pyspark.sql import functions as F

    fields = F.from_json(packed, ", ".join(f"{name} string" for name, _ in _PACKED_FIELDS))
    return [
        (F.unbase64(fields[name]) if kind == "binary" else fields[name]).alias(column)
        for (name, kind), (column, _) in zip(_PACKED_FIELDS, DEAD_LETTER_COLUMNS, strict=True)
    ]


def _stack(column: pd.Series, width: int) -> np.ndarray:
    """An ``array<double>`` column as a float64 matrix ``[rows, width]``; null -> NaN."""
    if len(column) == 0:
        return np.empty((0, width), np.float64)
    return np.asarray(
        [
            np.asarray(v, dtype=np.float64) if v is not None else np.full(width, np.nan)
            for v in column
        ],
        dtype=np.float64,
    ).reshape(len(column), width)


def route(parsed: DataFrame) -> DataFrame:
    """Rows of :func:`stream.parse.parse` as the operator's readings: a valid reading as it
    is, a row that broke a rule under :data:`DEAD_LETTER_KEY` with a null event time and its
    dead-letter columns (computed for those rows only).

    Returns:
        ``device_id``, ``event_time``, ``seq``, ``sensors``, ``settings``,
        ``known_sensors`` and :data:`PACKED_DEAD_LETTER`; set the watermark on
        ``event_time`` next.
    """
    from pyspark.sql import functions as F

    valid = F.col("error").isNull()
    source = F.format_string("kafka:%s/%d@%d", F.col("topic"), F.col("partition"), F.col("offset"))
    packed = pack_dead_letter(
        F.col("key"),
        F.col("value"),
        F.col("error.field"),
        F.col("error.rule"),
        F.col("error.reason"),
        source,
    )
    known = parsed.schema["known_sensors"].metadata  # its names (stream.parse.known_names_of)
    return parsed.select(
        F.when(valid, F.col("device_id")).otherwise(F.lit(DEAD_LETTER_KEY)).alias("device_id"),
        *[F.when(valid, F.col(c)).alias(c) for c in ("event_time", "seq", "sensors", "settings")],
        F.when(valid, F.col("known_sensors")).alias("known_sensors", metadata=known),
        F.when(~valid, packed).alias(PACKED_DEAD_LETTER),
    )


def bucket_of(device_id: Column) -> Column:
    """A device's state bucket, its key in :data:`BUCKET_KEYS`: the one at Spark's xxhash64
    of the id modulo :data:`STATE_BUCKETS` (the same on every executor and Spark version
    that keeps its hash)."""
    from pyspark.sql import functions as F

    index = F.pmod(F.xxhash64(device_id), F.lit(STATE_BUCKETS)).cast("int")
    bucket: Column = F.element_at(F.array(*[F.lit(k) for k in BUCKET_KEYS]), index + 1)
    return bucket


def sequences(
    readings: DataFrame,
    spec: FeatureSpec,
    norm: NormStats,
    lateness_ms: int | None = None,
    ttl_ms: int | None = None,
    scoring: ScoringSpec | None = None,
) -> DataFrame:
    """Readings (with a watermark on ``event_time``) to K-window sequences, or with
    ``scoring`` to scored windows.

    Args:
        readings: ``device_id``, ``event_time``, ``seq``, ``sensors`` and ``settings`` of
            valid readings (and ``known_sensors``, read instead of ``sensors`` for those
            names, when present), with the watermark already set; with the dead letters too
            when it comes from :func:`route` (without :data:`PACKED_DEAD_LETTER`, there
            are none).
        spec: the model's feature spec (sensors, window, K).
        norm: the model's normalisation (and per-regime standardisation, if any).
        lateness_ms: the watermark's delay; given, a device's window closes as soon as
            its own readings are that far past the window's end (see :class:`DeviceWindows`).
        ttl_ms: how long (event time) a device with nothing open keeps its state after
            its last closed window; None keeps it for ever (see :class:`FleetWindows`).
        scoring: the model the workers score with; given, the operator scores the
            windows it closes (one call each time a bucket's readings or its timer close
            windows), where a scoring stage after
            it would take every window's K x F values from the operator through the JVM
            to a second Python worker.

    Returns:
        Rows of :func:`sequences_schema`: one per closed window of a device with K
        windows, and one per dead letter; with ``scoring``, rows of
        :func:`stream.scoring.output_schema` with :data:`stream.scoring.PACKED_SCORES`
        packed (:func:`stream.scoring.unpack_scored` unpacks them).
    """
    from pyspark.sql import functions as F

    from stream.parse import known_names_of
    from stream.scoring import operator_schema

    present = set(readings.columns)
    position = {name: i for i, name in enumerate(known_names_of(readings))}

    def sensor(name: str) -> Column:
        # By position in the known sensors' array where the parse has it (a map lookup
        # scans the keys), else from the map.
        if "known_sensors" in present and name in position:
            value: Column = F.col("known_sensors")[position[name]]
            return value
        return F.col("sensors")[name]

    values = [F.unix_millis("event_time").cast("double")]
    values += [sensor(name) for name in spec.sensors]
    if norm.regimes is not None:
        values += [F.col("settings")[name] for name in norm.regimes.settings]
    dead_letter = (
        F.col(PACKED_DEAD_LETTER)
        if PACKED_DEAD_LETTER in present
        else F.lit(None).cast("string").alias(PACKED_DEAD_LETTER)
    )
    bucket = (
        F.when(F.col("device_id") == DEAD_LETTER_KEY, F.lit(DEAD_LETTER_BUCKET))
        .otherwise(bucket_of(F.col("device_id")))
        .alias("bucket")
    )
    windows: DataFrame = (
        readings.select(
            bucket, "device_id", "event_time", "seq", F.array(*values).alias("values"), dead_letter
        )
        .groupBy("bucket")
        .transformWithStateInPandas(
            FleetWindows(spec, norm, lateness_ms, ttl_ms, scoring),
            outputStructType=output_schema() if scoring is None else operator_schema(),
            outputMode="append",
            timeMode="EventTime",
        )
    )
    kept = [name for name in windows.columns if name != PACKED_DEAD_LETTER]
    result: DataFrame = windows.select(*kept, *unpack_dead_letter(F.col(PACKED_DEAD_LETTER)))
    return result
