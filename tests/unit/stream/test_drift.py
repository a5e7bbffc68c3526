"""Input drift against the default model's training distribution: a simulated fleet with
drift injected into known sensors is noticed naming exactly those sensors within a bounded
number of windows; the same fleet without it raises nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploy.cli import main
from models.data import load_sim_recording, window_features
from models.drift import (
    DRIFT_FILE,
    DriftReference,
    load_reference,
    psi,
    reference_from_features,
    watched_values,
)
from models.metadata import DEFAULT_MODEL
from models.scorer import Scorer
from stream.contract import DriftNotice, Keys
from stream.drift import DriftMonitor, DriftSettings

MACHINES = 60
CYCLES = 600
#: Windows of the fleet before machines of every age are running: all start near new.
BURN_IN = 40
#: The bound the README states: a drift is noticed within this many windows of the fleet.
NOTICED_WITHIN = 800


def _windows(folder: Path, *drift: str) -> tuple[np.ndarray, np.ndarray]:
    """Device ids and watched values of a simulated turbofan fleet, in event-time order."""
    args = ["--log-level", "WARNING", "simulate", "--types", "turbofan", "--machines",
            str(MACHINES), "--rate", "max", "--duration", str(CYCLES * 600), "--seed", "5",
            "--dropout-rate", "0", "--record", str(folder), "--no-publish"]  # fmt: skip
    if drift:
        args += ["--drift-rate", "1", "--drift-sensors", ",".join(drift)]
    assert main(args) == 0
    meta = Scorer.load(DEFAULT_MODEL).metadata
    recording = load_sim_recording(folder / "readings.parquet")
    # The simulator records C-MAPSS's cycle counter as the reading's sequence number.
    recording.readings["cycle"] = recording.readings["seq"] + 1.0
    w = window_features(recording, meta.spec, regimes=meta.norm.regimes)
    order = np.argsort(w.index, kind="stable")
    order = order[w.index[order] >= w.index.min() + BURN_IN]
    return w.device[order], watched_values(w.features[order], meta.spec, meta.norm)


@pytest.fixture(scope="module")
def fleets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("drift")
    return {
        "clean": _windows(root / "clean"),
        "drift": _windows(root / "drift", "s3", "s11"),
    }


def _run(monitor: DriftMonitor, devices: np.ndarray, values: np.ndarray) -> list[tuple[int, Any]]:
    notices = []
    for i in range(0, len(values), MACHINES):  # a batch: about a window of each machine
        for n in monitor.update(list(devices[i : i + MACHINES]), values[i : i + MACHINES], i, "v"):
            notices.append((i + MACHINES, n))
    return notices


def _monitor() -> DriftMonitor:
    meta = Scorer.load(DEFAULT_MODEL).metadata
    reference = load_reference(DEFAULT_MODEL, meta.spec.sensors)
    assert reference is not None, f"the default model has no {DRIFT_FILE}"
    return DriftMonitor(reference)


def test_a_clean_fleet_raises_no_drift_notice(fleets: dict[str, Any]) -> None:
    monitor = _monitor()
    devices, values = fleets["clean"]
    assert len(values) > 2000
    assert _run(monitor, devices, values) == []
    assert np.nanmax(monitor.psi) < monitor.settings.threshold
    assert monitor.drifting == []


def test_drift_in_known_sensors_is_noticed_naming_them_within_the_stated_bound(
    fleets: dict[str, Any],
) -> None:
    monitor = _monitor()
    clean, drifted = fleets["clean"], fleets["drift"]
    devices = np.concatenate([clean[0], drifted[0]])
    values = np.vstack([clean[1], drifted[1]])
    switch = len(clean[1])  # the drift starts here
    notices = _run(monitor, devices, values)
    assert all(at > switch for at, _ in notices), "a notice before the drift began"
    named = {s for _, n in notices if n.kind == "started" for s in n.sensors}
    assert named == {"s3", "s11"}
    latest = max(at for at, _ in notices) - switch
    assert latest <= NOTICED_WITHIN, f"noticed {latest} windows after the drift began"
    assert sorted(monitor.drifting) == ["s11", "s3"]
    # Per device: the drifting machines are listed, with a drifting sensor.
    assert monitor.devices and {s for s, _ in monitor.devices.values()} <= {"s3", "s11"}


def test_the_reference_is_what_the_training_data_gives(cmapss_dir: Path) -> None:
    from models.data import load_data

    meta = Scorer.load(DEFAULT_MODEL).metadata
    windows = window_features(
        load_data(f"cmapss:{cmapss_dir}"), meta.spec, regimes=meta.norm.regimes
    )
    fresh = reference_from_features(windows.features, meta.spec, meta.norm)
    committed = load_reference(DEFAULT_MODEL, meta.spec.sensors)
    assert committed is not None
    assert committed.windows == fresh.windows
    for j, sensor in enumerate(meta.spec.sensors):
        assert np.allclose(committed.edges[j], fresh.edges[j], atol=1e-6), sensor
        assert np.allclose(committed.expected[j], fresh.expected[j], atol=1e-6), sensor
    assert committed.edges[meta.spec.sensors.index("cycle")] == ()  # a counter: not watched


def test_psi_counts_the_training_shares_of_a_quantised_sensor() -> None:
    rng = np.random.default_rng(1)
    train = np.round(rng.normal(0, 1.5, 5000)) / 5  # a window mean of whole numbers
    from models.drift import _QUANTILES, _between

    edges = _between(np.sort(train), np.quantile(train, _QUANTILES))
    counts = np.bincount(np.searchsorted(edges, train, side="right"), minlength=len(edges) + 1)
    expected = counts / len(train)
    assert not np.isin(train, edges).any()  # no training value on an edge
    assert psi(edges, train, expected) == pytest.approx(0.0, abs=1e-9)
    same = np.round(rng.normal(0, 1.5, 5000)) / 5 + 1e-9  # rounding noise of another path
    assert psi(edges, same, expected) < 0.02
    assert psi(edges, same + 1.0, expected) > 0.25
    assert np.isnan(psi(edges, [np.nan, np.nan], expected))


def test_a_missing_or_bad_reference_turns_drift_watching_off_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    assert load_reference(tmp_path, ["s1"]) is None
    assert "has no drift.json: input drift is not watched" in caplog.text
    (tmp_path / DRIFT_FILE).write_text('{"sensors": {"s1": {"edges": [2, 1], "expected": [1]}}}')
    assert load_reference(tmp_path, ["s1"]) is None
    assert "edges must increase" in caplog.text
    good = DriftReference(("s1",), ((0.0,),), ((0.5, 0.5),), 10)
    (tmp_path / DRIFT_FILE).write_text(json.dumps(good.to_dict()))
    assert load_reference(tmp_path, ["s2"]) is None
    assert "names sensors s1, the model reads s2" in caplog.text
    assert load_reference(tmp_path, ["s1"]) == good


def test_a_drift_notice_round_trips_and_the_keys_are_the_contracts() -> None:
    notice = DriftNotice("started", {"s3": 0.52}, 1000, 123, "v1", 456)
    assert DriftNotice.from_json(notice.to_json()) == notice
    assert json.loads(notice.to_json())["type"] == "drift"
    keys = Keys("plant")
    assert (keys.drift, keys.drift_devices, keys.drift_notices) == (
        "plant:drift",
        "plant:drift:devices",
        "plant:drift:notices",
    )


def test_figures_not_computed_yet_are_not_published() -> None:
    written: dict[str, Any] = {}

    class Pipe:
        def hset(self, key: str, mapping: dict[str, str]) -> None:
            written.update(mapping)

        def __getattr__(self, name: str) -> Any:
            return lambda *a, **k: None

    class Client:
        def pipeline(self, **_: Any) -> Pipe:
            return Pipe()

    reference = DriftReference(("s1", "s2"), ((0.0,), ()), ((0.5, 0.5), ()), 10)
    monitor = DriftMonitor(reference)
    monitor.update(["d"], [[1.0, 1.0]], 0, "v")  # under min_windows: no PSI yet
    monitor.publish(Client(), Keys("p"), [])
    assert not any(k.startswith("psi:") for k in written)
    assert written["windows"] == "1" and written["drifting"] == ""


@pytest.mark.parametrize("sustain", [8, 800])  # chunks of 2 windows; of 200, over `recent`
def test_the_fleet_figures_are_the_psi_of_the_last_recent_windows(sustain: int) -> None:
    # The monitor keeps bin counts of its last `recent` windows and updates them as windows
    # enter and leave; its PSI must be that of binning those windows again, exactly, over
    # batches of every size (one larger than `recent`), with missing and infinite values.
    meta = Scorer.load(DEFAULT_MODEL).metadata
    reference = load_reference(DEFAULT_MODEL, meta.spec.sensors)
    assert reference is not None
    settings = DriftSettings(recent=120, min_windows=30, sustain=sustain)
    monitor = DriftMonitor(reference, settings)
    rng = np.random.default_rng(11)
    fed: list[np.ndarray] = []
    checked = 0
    for size in (1, 7, 29, 200, 3, 64, 121, 5):
        v = rng.normal(size=(size, len(reference.sensors))) + 0.3
        v[rng.random(v.shape) < 0.1] = np.nan
        v[rng.random(v.shape) < 0.02] = np.inf
        monitor.update([f"d{i}" for i in range(size)], v, 0, "v")
        fed.extend(v)
        last = np.array(fed[-settings.recent :])
        if len(fed) < settings.min_windows:
            assert np.isnan(monitor.psi).all()
            continue
        # The last chunk's PSI: the windows up to the end of the batch.
        want = [
            reference.psi(j, last[:, j]) if e else np.nan for j, e in enumerate(reference.edges)
        ]
        np.testing.assert_array_equal(monitor.psi, want)
        checked += 1
    assert checked >= 5


def test_a_devices_windows_in_one_batch_count_as_one_at_a_time() -> None:
    reference = DriftReference(("s1", "s2"), ((0.0,), (0.0,)), ((0.5, 0.5), (0.5, 0.5)), 10)
    together = DriftMonitor(reference, DriftSettings(device_alpha=0.5, device_z=1.0))
    apart = DriftMonitor(reference, DriftSettings(device_alpha=0.5, device_z=1.0))
    ids = ["a", "b", "a", "a", "c", "b"]
    v = np.array([[3.0, 0.0], [0.5, np.nan], [-4.0, 0.1], [2.0, 0.0], [np.nan, 2.0], [0.2, 0.2]])
    together.update(ids, v, 0, "v")
    for device, row in zip(ids, v, strict=True):
        apart.update([device], row[None, :], 0, "v")
    for device in "abc":
        np.testing.assert_array_equal(
            together._means[together._row[device]], apart._means[apart._row[device]]
        )
    assert together.devices == apart.devices
    assert together._listed == apart._listed and together._unlisted == apart._unlisted
    # a: 3 -> -0.5 -> 0.75 (listed after its first window, no longer after its third)
    assert "a" not in together.devices and "a" in together._unlisted
    assert together.devices == {"c": ("s2", 2.0)}


def test_many_devices_windows_in_one_batch_count_as_one_at_a_time() -> None:
    # Devices' first windows in a batch are folded in at once, then their second ones...,
    # and a few devices with many windows one window at a time: the means and the listed
    # devices must be those of one window at a time throughout.
    reference = DriftReference(
        ("s1", "s2", "s3"), ((0.0,), (), (-1.0, 1.0)), ((0.5, 0.5), (), (0.2, 0.6, 0.2)), 10
    )
    settings = DriftSettings(device_alpha=0.3, device_z=1.5)
    together, apart = DriftMonitor(reference, settings), DriftMonitor(reference, settings)
    rng = np.random.default_rng(5)
    for _ in range(3):
        ids = [f"d{i}" for i in range(60) for _ in range(int(rng.integers(1, 4)))]
        ids += ["busy"] * 50  # one device with many windows: past the passes at once
        ids = [ids[i] for i in rng.permutation(len(ids))]
        v = rng.normal(0, 1.5, size=(len(ids), 3))
        v[rng.random(v.shape) < 0.1] = np.nan
        together.update(ids, v, 0, "v")
        for device, row in zip(ids, v, strict=True):
            apart.update([device], row[None, :], 0, "v")
        assert together._row.keys() == apart._row.keys()
        for device in together._row:
            np.testing.assert_array_equal(
                together._means[together._row[device]], apart._means[apart._row[device]]
            )
        assert together.devices == apart.devices
        assert together._listed == apart._listed and together._unlisted == apart._unlisted
    assert together.devices and len(together.devices) < 61  # some listed, not all
