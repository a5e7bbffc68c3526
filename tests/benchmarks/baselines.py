"""The two single-process baselines of the end-to-end benchmark (no Spark).

Both read the same topic, compute the same windows (tumbling, the model's length and
origin), keep the same last K windows per device, score with the same model and apply the
job's alert policy through the job's sink (:class:`stream.sink.RedisAlertSink`), so they
do the job's work (with the job's model, ``model``: the committed default unless given):
the same scored windows and the same alert events, which the benchmark
checks (:attr:`BaselineResult.windows`, and the events read back from Redis). A window is
closed once the event time read passes its end by the watermark (``end <= event_time -
watermark``), where the event time is the least over the topic's partitions of the
greatest time read from each (a per-partition watermark: the consumer reads the
partitions in chunks, so one can run ahead of the other); closing it appends it to its
device's sequence, which is scored once the device has K windows.

``naive``
    kafka-python, one record at a time (``for message in consumer``), ``json.loads``,
    windows kept as Python lists, one ``Scorer.score`` call per scored window (batch 1),
    and one sink ``write`` per scored window (its round trips unbatched).
``batched``
    the hand-written fast path: ``poll`` batches of up to 10,000 records, columns built
    with numpy, the closing windows' features in one
    :func:`models.features.compute_windows_features` call (the job's vectorised code),
    one batched ``Scorer.score`` per poll, and one pipelined sink ``write`` per poll.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.benchmarks.common import ROOT

DEFAULT_MODEL = ROOT / "models" / "default"


@dataclass
class BaselineResult:
    readings: int
    windows_scored: int
    alerts: int
    seconds: float
    last_write_s: float  # since start, when the last window's write returned
    windows: set[tuple[str, int]] = field(default_factory=set)  # (device, window end ms)


def _policy_sink(redis_url: str, prefix: str, threshold: float, window_ms: int) -> Any:
    """The job's sink with the job's default alert policy for the model's threshold."""
    from stream.config import StreamConfig
    from stream.sink import RedisAlertSink

    policy = StreamConfig.from_env({}, redis_url=redis_url).policy(threshold)
    return RedisAlertSink(redis_url, policy, window_ms, prefix=prefix)


def _consumer(bootstrap: str, topic: str, **kw: Any) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kw,
    )


def _parse_t(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def naive(
    bootstrap: str,
    topic: str,
    redis_url: str,
    prefix: str,
    total: int,
    watermark_s: float,
    partitions: int = 2,
    model: Path = DEFAULT_MODEL,
) -> BaselineResult:
    from models.features import compute_window_features, normalise
    from models.scorer import Scorer
    from stream.alerts import ScoredWindow

    scorer = Scorer.load(model, providers="cpu")
    meta = scorer.metadata
    spec = meta.spec
    k, _ = scorer.input_shape
    w = spec.window_seconds
    w_ms = int(w * 1000)
    sensors = spec.sensors
    sink = _policy_sink(redis_url, prefix, meta.threshold, w_ms)
    consumer = _consumer(bootstrap, topic)
    open_windows: dict[tuple[str, int], list[tuple[float, list[float]]]] = {}
    sequences: dict[str, deque[np.ndarray]] = defaultdict(lambda: deque(maxlen=k))
    written: set[tuple[str, int]] = set()
    read = scored = alerts = 0
    max_t = float("-inf")
    closed_upto = float("-inf")
    started = time.perf_counter()
    last_write = 0.0

    def close(wm: float) -> None:
        nonlocal scored, alerts, last_write
        ready = [key for key in open_windows if (key[1] + 1) * w <= wm]
        for key in sorted(ready, key=lambda kv: kv[1]):
            device, j = key
            rows = open_windows.pop(key)
            feats = compute_window_features(spec, [t for t, _ in rows], [v for _, v in rows])
            seq = sequences[device]
            seq.append(feats)
            if len(seq) < k:
                continue
            risk = float(scorer.score(normalise(np.stack(seq), meta.norm)[None])[0])
            scored += 1
            window = ScoredWindow(
                device, j * w_ms, (j + 1) * w_ms, risk, meta.model_version, scorer.active_provider
            )
            alerts += sink.write([window]).events
            written.add((device, window.window_end_ms))
            last_write = time.perf_counter() - started

    part_max = dict.fromkeys(range(partitions), float("-inf"))
    for message in consumer:
        doc = json.loads(message.value)
        t = _parse_t(doc["t"])
        x = doc["x"]
        values = [float("nan") if x.get(s) is None else x[s] for s in sensors]
        open_windows.setdefault((doc["d"], int(t // w)), []).append((t, values))
        read += 1
        if t > part_max[message.partition]:
            part_max[message.partition] = t
            max_t = min(part_max.values())
            boundary = (max_t - watermark_s) // w
            if boundary > closed_upto:  # the watermark passed a window end
                closed_upto = boundary
                close(max_t - watermark_s)
        if read >= total:
            break
    max_t = max(part_max.values())
    close(max_t - watermark_s)
    elapsed = time.perf_counter() - started
    consumer.close()
    sink.close()
    return BaselineResult(read, scored, alerts, elapsed, last_write, written)


def batched(
    bootstrap: str,
    topic: str,
    redis_url: str,
    prefix: str,
    total: int,
    watermark_s: float,
    partitions: int = 2,
    model: Path = DEFAULT_MODEL,
) -> BaselineResult:
    from models.features import compute_windows_features, normalise
    from models.scorer import Scorer
    from stream.alerts import ScoredWindow

    scorer = Scorer.load(model, providers="cpu")
    meta = scorer.metadata
    spec = meta.spec
    k, _ = scorer.input_shape
    w = spec.window_seconds
    w_ms = int(w * 1000)
    sensors = spec.sensors
    sink = _policy_sink(redis_url, prefix, meta.threshold, w_ms)
    written: set[tuple[str, int]] = set()
    consumer = _consumer(
        bootstrap,
        topic,
        max_poll_records=10_000,
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
    )
    device_ids: dict[str, int] = {}
    names: list[str] = []
    pending_t: list[np.ndarray] = []
    pending_d: list[np.ndarray] = []
    pending_v: list[np.ndarray] = []
    sequences: dict[int, deque[np.ndarray]] = defaultdict(lambda: deque(maxlen=k))
    read = scored = alerts = 0
    part_max = dict.fromkeys(range(partitions), float("-inf"))
    started = time.perf_counter()
    last_write = 0.0
    loads = json.loads
    fromiso = _iso_parser()

    def close(wm: float) -> None:
        nonlocal pending_t, pending_d, pending_v, scored, alerts, last_write
        if not pending_t:
            return
        t = np.concatenate(pending_t)
        d = np.concatenate(pending_d)
        v = np.concatenate(pending_v)
        j = np.floor(t / w).astype(np.int64)
        done = (j + 1) * w <= wm
        keep = ~done
        pending_t, pending_d, pending_v = [t[keep]], [d[keep]], [v[keep]]
        if not done.any():
            return
        t, d, v, j = t[done], d[done], v[done], j[done]
        order = np.lexsort((t, d, j))
        t, d, v, j = t[order], d[order], v[order], j[order]
        starts = np.r_[0, np.flatnonzero((np.diff(d) != 0) | (np.diff(j) != 0)) + 1]
        features = compute_windows_features(spec, t, v, starts)  # every closing window at once
        seqs, meta_rows = [], []
        for lo, feats in zip(starts, features, strict=True):
            dev = int(d[lo])
            seq = sequences[dev]
            seq.append(feats)
            if len(seq) == k:
                seqs.append(np.stack(seq))
                meta_rows.append((dev, int(j[lo])))
        if not seqs:
            return
        risk = scorer.score(normalise(np.stack(seqs), meta.norm))
        windows = [
            ScoredWindow(
                device_id=names[dev],
                window_start_ms=jj * w_ms,
                window_end_ms=(jj + 1) * w_ms,
                risk=float(r),
                model_version=meta.model_version,
                provider=scorer.active_provider,
                top_features=(),
            )
            for (dev, jj), r in zip(meta_rows, risk.tolist(), strict=True)
        ]
        result = sink.write(windows)
        scored += len(windows)
        alerts += result.events
        written.update((win.device_id, win.window_end_ms) for win in windows)
        last_write = time.perf_counter() - started

    while read < total:
        polled = consumer.poll(timeout_ms=500, max_records=10_000)
        records = [m for batch in polled.values() for m in batch]
        if not records:
            continue
        n = len(records)
        ts = np.empty(n)
        ds = np.empty(n, dtype=np.int64)
        vs: list[list[float]] = []
        nan = float("nan")
        for i, message in enumerate(records):
            doc = loads(message.value)
            dev = device_ids.get(doc["d"])
            if dev is None:
                dev = device_ids[doc["d"]] = len(names)
                names.append(doc["d"])
            ds[i] = dev
            ts[i] = fromiso(doc["t"])
            x = doc["x"]
            vs.append([x.get(s, nan) for s in sensors])
        read += n
        pending_t.append(ts)
        pending_d.append(ds)
        pending_v.append(np.array(vs, dtype=np.float64))
        for tp, batch in polled.items():
            part_max[tp.partition] = max(part_max[tp.partition], _parse_t_bytes(batch[-1].value))
        close(min(part_max.values()) - watermark_s)
    close(max(part_max.values()) - watermark_s)
    elapsed = time.perf_counter() - started
    consumer.close()
    sink.close()
    return BaselineResult(read, scored, alerts, elapsed, last_write, written)


def _parse_t_bytes(value: bytes) -> float:
    return _parse_t(json.loads(value)["t"])


def _iso_parser() -> Callable[[str], float]:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` to Unix seconds, caching the last one (a fleet's
    readings of one step share their time)."""
    from datetime import datetime

    last: list[Any] = [None, 0.0]

    def parse(text: str) -> float:
        if text != last[0]:
            last[0] = text
            last[1] = datetime.fromisoformat(text).timestamp()
        return float(last[1])

    return parse
