"""Alert lifecycle: threshold, hysteresis, cooldown, severities, ids."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.alerts import AlertPolicy, DeviceState, ScoredWindow, alert_id, event_id, step

W = 60_000  # one-minute windows
POLICY = AlertPolicy(
    threshold=0.5,
    hysteresis=0.1,
    resolve_windows=2,
    cooldown_windows=3,
    update_delta=0.15,
    critical=0.9,
)


def run(
    risks: list[float], policy: AlertPolicy = POLICY, device: str = "pump-1"
) -> list[tuple[int, str, str]]:
    """(window index, kind, severity) of every event for a device's risk series."""
    state = DeviceState()
    out = []
    for i, risk in enumerate(risks):
        window = ScoredWindow(device, i * W, (i + 1) * W, risk, "v1", "CPUExecutionProvider")
        state, events = step(policy, state, window, W)
        out.extend((i, e.kind, e.severity) for e in events)
    return out


def test_below_threshold_raises_nothing() -> None:
    assert run([0.1, 0.2, 0.49, 0.3]) == []


def test_one_open_alert_while_above_threshold() -> None:
    assert run([0.2, 0.6, 0.62, 0.65, 0.61, 0.7]) == [(1, "opened", "warning")]


def test_hysteresis_keeps_the_alert_open_just_below_threshold() -> None:
    # 0.45 is below 0.5 but above 0.5 - 0.1: no resolve, no flapping.
    assert run([0.6, 0.45, 0.55, 0.45, 0.52]) == [(0, "opened", "warning")]


def test_resolves_after_consecutive_windows_below_the_band() -> None:
    events = run([0.6, 0.3, 0.6, 0.3, 0.3])
    assert events == [(0, "opened", "warning"), (4, "resolved", "warning")]


def test_cooldown_blocks_a_new_alert_then_allows_one() -> None:
    risks = [0.6, 0.2, 0.2, 0.8, 0.8, 0.8, 0.8]
    # resolved at window 2; cooldown 3 windows: windows 3, 4, 5 blocked, window 6 opens.
    assert run(risks) == [
        (0, "opened", "warning"),
        (2, "resolved", "warning"),
        (6, "opened", "warning"),
    ]


def test_severity_change_and_large_moves_update_the_alert() -> None:
    events = run([0.55, 0.6, 0.75, 0.95, 0.96])
    assert events == [
        (0, "opened", "warning"),
        (2, "updated", "warning"),
        (3, "updated", "critical"),
    ]


def test_ids_are_derived_from_device_window_and_model() -> None:
    _state, events = step(POLICY, DeviceState(), ScoredWindow("d", 0, W, 0.7, "v1", "CPU"), W)
    opened = events[0]
    assert opened.alert_id == alert_id("d", W, "v1") == opened.event_id
    assert alert_id("d", W, "v2") != opened.alert_id
    assert alert_id("e", W, "v1") != opened.alert_id
    assert event_id(opened.alert_id, "resolved", 5 * W) != opened.alert_id


def test_a_window_applied_twice_is_ignored() -> None:
    window = ScoredWindow("d", 0, W, 0.7, "v1", "CPU")
    state, first = step(POLICY, DeviceState(), window, W)
    again, second = step(POLICY, state, window, W)
    assert len(first) == 1 and second == [] and again == state


_INTS = st.integers(min_value=-1, max_value=2**53)


@given(
    st.builds(
        DeviceState,
        last_window_end_ms=_INTS,
        alert_id=st.none() | st.text(),
        opened_window_end_ms=_INTS,
        severity=st.sampled_from([None, "warning", "critical"]),
        last_event_risk=st.floats(),
        below=st.integers(min_value=0, max_value=100),
        cooldown_until_ms=_INTS,
    )
)
def test_the_state_json_is_what_json_dumps_writes(state: DeviceState) -> None:
    """The hand-written encoder writes byte for byte what the sink wrote before it."""
    want = json.dumps(asdict(state), separators=(",", ":"), sort_keys=True)
    assert state.to_json() == want
    back = DeviceState.from_json(state.to_json())
    assert back == state or state.last_event_risk != state.last_event_risk  # NaN != NaN


@settings(max_examples=300)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30))
def test_a_window_without_an_alert_only_moves_the_state_on(risks: list[float]) -> None:
    """With no alert open and none opening, a window changes only the last window."""
    state = DeviceState()
    for i, risk in enumerate(risks):
        window = ScoredWindow("d", i * W, (i + 1) * W, risk, "v1", "CPU")
        new, events = step(POLICY, state, window, W)
        if not events and state.alert_id is None:
            assert new == replace(state, last_window_end_ms=window.window_end_ms)
        state = new


def test_state_survives_json() -> None:
    state, _ = step(POLICY, DeviceState(), ScoredWindow("d", 0, W, 0.7, "v1", "CPU"), W)
    assert DeviceState.from_json(state.to_json()) == state
    assert DeviceState.from_json(None) == DeviceState()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0.0},
        {"threshold": 0.5, "hysteresis": 0.6},
        {"resolve_windows": 0},
        {"threshold": 0.8, "critical": 0.5},
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AlertPolicy(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=60), st.integers(1, 7)
)
def test_batch_boundaries_do_not_change_the_events(risks: list[float], cut: int) -> None:
    """Applying windows in chunks (micro-batches), or re-applying a chunk, gives the same events."""
    windows = [ScoredWindow("d", i * W, (i + 1) * W, r, "v1", "CPU") for i, r in enumerate(risks)]
    state, whole = DeviceState(), []
    for w in windows:
        state, events = step(POLICY, state, w, W)
        whole.extend(events)
    state, chunked = DeviceState(), []
    for start in range(0, len(windows), cut):
        chunk = windows[start : start + cut]
        for _ in range(2):  # every chunk replayed once, as after a crash
            for w in chunk:
                new_state, events = step(POLICY, state, w, W)
                state = new_state
                chunked.extend(events)
    assert [e.event_id for e in chunked] == [e.event_id for e in whole]
    opened = [e for e in whole if e.kind == "opened"]
    resolved = [e for e in whole if e.kind == "resolved"]
    assert len(opened) - len(resolved) in (0, 1)  # alerts alternate open/resolve
