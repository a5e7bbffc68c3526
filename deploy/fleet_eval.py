"""Evaluate a model on a user's recording with the stream job's alert policy.

The model scores every window the stream job would score (:func:`models.fleet.score_windows`);
:func:`alert_openings` then runs :func:`stream.alerts.step` over each device's windows in
time order with the policy :meth:`stream.config.StreamConfig.policy` builds (the model's
threshold, or ``--threshold``; the job's hysteresis, resolve and cooldown), and keeps when
each alert opened. :func:`models.events.event_metrics` judges the openings against the
failure log. A rule baseline (:data:`models.fleet.RULES`) goes through the same windows,
the same policy and the same judge.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from deploy.fleet_data import FleetData
from models.data import Recording
from models.durations import format_duration
from models.errors import DataError
from models.events import EventTable, event_metrics
from models.fleet import ScoredWindows, applicable_rules, rule_risk, score_windows
from models.fleet_report import fleet_report, write_fleet_report
from models.scorer import Scorer
from stream.alerts import AlertPolicy, DeviceState, ScoredWindow, step
from stream.config import StreamConfig
from stream.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "EvaluationInputs",
    "alert_openings",
    "evaluate",
    "evaluate_inputs",
    "evaluation_inputs",
    "judge",
    "policy_for",
    "print_table",
]


@dataclass(frozen=True)
class EvaluationInputs:
    """What ``evaluate`` (and ``backtest``) work on: the model, the recording, the devices.

    Attributes:
        model_dir: the model folder.
        training: the model's ``training.json`` (empty when it has none).
        data: the recording as read, with its event log.
        devices: the devices to evaluate.
        devices_from: why those (held out at training, or every device).
        notes: what the user should know.
    """

    model_dir: Path
    training: dict[str, Any]
    data: FleetData
    devices: list[str]
    devices_from: str
    notes: list[str]


def evaluation_inputs(args: Any) -> EvaluationInputs:
    """The model, the recording read with the options it was trained with (unless others are
    given) and the devices held out at training (all, with ``--include-training-devices``).

    Raises:
        DataError: none of the held-out devices is in the recording.
    """
    import json

    from deploy import fleet_data
    from deploy.fleet_data import RECORDED_OPTIONS
    from models.metadata import resolve_model_path

    onnx_path, _ = resolve_model_path(args.model)
    model_dir = onnx_path.parent
    training: dict[str, Any] = {}
    if (model_dir / "training.json").is_file():
        training = json.loads((model_dir / "training.json").read_text(encoding="utf-8"))
    recorded = (training.get("recording") or {}).get("options") or {}
    given = [o for o in RECORDED_OPTIONS if getattr(args, o, None) not in (None, False)]
    given = [o for o in given if o != "cycle_seconds" or args.cycle_seconds != 600.0]
    if not given and recorded:
        for option, value in recorded.items():
            if option in RECORDED_OPTIONS:
                setattr(args, option, value)
        print(
            "using the column and event options the model was trained with (training.json): "
            + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in recorded.items() if v),
            flush=True,
        )
    data = fleet_data.read(args)
    recording = data.recording
    notes = list(data.notes)
    split_path = model_dir / "split.json"
    in_data = set(recording.devices)
    if args.include_training_devices or not split_path.is_file():
        devices = sorted(in_data)
        if split_path.is_file():
            why = "every device, also those the model was trained on (--include-training-devices)"
            logger.warning(
                "scoring the devices the model was trained on too: its figures are optimistic"
            )
            notes.append(
                "the devices the model was trained on are scored too: the figures are optimistic"
            )
        else:
            why = "every device (the model has no split.json)"
            notes.append(f"{model_dir} has no split.json: every device of the recording is scored")
    else:
        split = json.loads(split_path.read_text(encoding="utf-8"))
        test = [str(d) for d in split.get("test_devices", [])]
        devices = sorted(set(test) & in_data)
        why = f"held out at training ({split_path})"
        absent = sorted(set(test) - in_data)
        if absent:
            notes.append(
                f"{len(absent)} of the {len(test)} held-out devices are not in {data.path} "
                f"(e.g. {', '.join(absent[:3])})"
            )
        if not devices:
            raise DataError(
                f"{data.path}: none of the {len(test)} devices held out at training "
                f"({split_path}) is in the recording; evaluate on the data the model was "
                "trained on, or pass --include-training-devices for a recording of other devices"
            )
    return EvaluationInputs(model_dir, training, data, devices, why, notes)


def evaluate_inputs(inputs: EvaluationInputs, args: Any, out: Path) -> dict[str, Any]:
    """:func:`evaluate` on ``inputs`` with the command line's policy and lead options."""
    return evaluate(
        inputs.model_dir,
        inputs.data.recording.restrict(inputs.devices),
        devices=inputs.devices,
        devices_from=inputs.devices_from,
        out=out,
        lead_s=args.lead,
        max_lead_s=args.max_lead,
        plots=not args.no_plots,
        notes=inputs.notes,
        data_source=str(inputs.data.path),
        threshold=args.threshold,
        hysteresis=args.hysteresis,
        cooldown=args.cooldown,
        training=inputs.training or None,
    )


def policy_for(
    model_threshold: float,
    *,
    threshold: float | None = None,
    hysteresis: float = 0.1,
    cooldown: int = 3,
) -> AlertPolicy:
    """The alert policy ``prognos stream`` would run with these flags.

    Raises:
        DataError: The flags do not make a valid policy.
    """
    try:
        config = StreamConfig.from_env(
            env={}, threshold=threshold, hysteresis=hysteresis, cooldown_windows=cooldown
        )
        return config.policy(model_threshold)
    except ConfigError as exc:
        raise DataError(f"--threshold/--hysteresis/--cooldown: {exc}") from None


def alert_openings(
    scored: ScoredWindows, policy: AlertPolicy, window_s: float, model_version: str
) -> dict[str, list[float]]:
    """Device -> the times (window ends, seconds) at which the policy opened an alert."""
    window_ms = round(window_s * 1000)
    out: dict[str, list[float]] = {d: [] for d in scored.spans}
    state: dict[str, DeviceState] = {}
    for device, start, end, risk in zip(
        scored.device.tolist(),
        scored.window_start.tolist(),
        scored.window_end.tolist(),
        scored.risk.tolist(),
        strict=True,
    ):
        window = ScoredWindow(
            device_id=device,
            window_start_ms=round(start * 1000),
            window_end_ms=round(end * 1000),
            risk=risk,
            model_version=model_version,
            provider="evaluate",
        )
        state[device], events = step(policy, state.get(device, DeviceState()), window, window_ms)
        out.setdefault(device, []).extend(
            e.window_end_ms / 1000.0 for e in events if e.kind == "opened"
        )
    return out


def judge(
    openings: Mapping[str, Sequence[float]],
    recording: Recording,
    scored: ScoredWindows,
    lead_s: float,
    max_lead_s: float,
    window_s: float,
) -> EventTable:
    """The event table of ``openings`` against the recording's failure log."""
    log = recording.events
    assert log is not None
    return event_metrics(
        openings,
        log.failures,
        scored.spans,
        lead_s=lead_s,
        max_lead_s=max_lead_s,
        renewals=log.maintenance if log.maintenance_renews else None,
        grace_s=window_s,
    )


def evaluate(
    model: str | Path,
    recording: Recording,
    *,
    devices: Sequence[str],
    devices_from: str,
    out: Path,
    lead_s: float | None = None,
    max_lead_s: float | None = None,
    plots: bool = True,
    notes: Sequence[str] = (),
    data_source: str = "",
    threshold: float | None = None,
    hysteresis: float = 0.1,
    cooldown: int = 3,
    training: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score ``recording`` (the devices to evaluate) and write the report into ``out``.

    Raises:
        DataError: No failure log, no device with a full sequence, a sensor the model reads
            is missing, lead above the horizon.
    """
    if recording.events is None:
        raise DataError(
            f"{recording.name}: evaluating on a recording needs its failures: --failures FILE "
            "or --failure-column COL"
        )
    scorer = Scorer.load(model, providers="cpu")
    meta = scorer.metadata
    spec = meta.spec
    w = spec.window_seconds
    lead = w if lead_s is None else lead_s
    max_lead = spec.horizon_seconds if max_lead_s is None else max_lead_s
    if lead > max_lead:
        raise DataError(
            f"--lead {format_duration(lead)} is beyond the horizon the alerts speak for "
            f"({format_duration(max_lead)}): lower --lead, or raise --max-lead"
        )
    scored = score_windows(scorer.score, meta.norm, spec, recording)
    if len(scored) == 0:
        raise DataError(
            f"{recording.name}: no device of the {len(devices)} evaluated has "
            f"K = {spec.sequence_length} windows of {format_duration(w)}, so the stream job "
            "would score none; evaluate on longer histories"
        )
    policy = policy_for(
        meta.threshold, threshold=threshold, hysteresis=hysteresis, cooldown=cooldown
    )
    openings = alert_openings(scored, policy, w, meta.model_version)
    table = judge(openings, recording, scored, lead, max_lead, w)
    baselines: dict[str, tuple[dict[str, Any], ScoredWindows, EventTable]] = {}
    for rule in applicable_rules(recording.sensors):
        rule_scored = replace(scored, risk=rule_risk(rule, recording, scored, spec))
        rule_policy = policy_for(0.5, hysteresis=hysteresis, cooldown=cooldown)
        rule_open = alert_openings(rule_scored, rule_policy, w, f"rule:{rule.name}")
        baselines[rule.name] = (
            {
                "description": rule.description,
                "source": rule.source,
                "applied": "to the model's windows (same devices, same K-window warm-up), "
                "risk 1 when a reading of the window meets it, the same alert policy "
                "(threshold 0.5)",
            },
            rule_scored,
            judge(rule_open, recording, rule_scored, lead, max_lead, w),
        )
    short = sorted(set(scored.spans) - set(scored.device.tolist()))
    all_notes = list(notes)
    if short:
        all_notes.append(
            f"{len(short)} of {len(scored.spans)} devices never reach K = "
            f"{spec.sequence_length} windows, so the stream job scores none of their windows "
            f"(e.g. {', '.join(short[:3])}); their failures count as missed"
        )
    report = fleet_report(
        model=meta.summary() | {"sha256": meta.sha256},
        data={
            "source": data_source or recording.name,
            "sha256": recording.data_sha256,
            "devices_from": devices_from,
            "devices": len(devices),
        },
        spec=spec.to_dict(),
        scored=scored,
        threshold=policy.threshold,
        policy=asdict(policy),
        events=table,
        baselines=baselines,
        notes=all_notes,
        training=training,
    )
    tables = {"model": table} | {name: b[2] for name, b in baselines.items()}
    write_fleet_report(
        report,
        out,
        scored=scored,
        tables=tables,
        failures=recording.events.failures,
        plots=plots,
    )
    return report


def print_table(report: Mapping[str, Any]) -> None:
    """The event table (and window metrics) as the terminal shows them."""
    from models.fleet_report import events_rows

    tables = {"model": report["events"]} | {
        name: b["events"] for name, b in (report.get("baselines") or {}).items()
    }
    ev = report["events"]
    print(
        f"{report['protocol']['devices']} devices, {report['protocol']['windows_scored']:,} "
        f"windows scored; caught = an alert opened {format_duration(ev['lead_s'])} to "
        f"{format_duration(ev['max_lead_s'])} before the failure",
        flush=True,
    )
    for line in events_rows(tables):
        if not line.startswith("| ---"):
            print("  " + line.strip("|").replace(" | ", "  |  ").strip(), flush=True)
    m, ci = report.get("metrics"), report.get("ci95") or {}
    if m:
        print(f"window level ({report['protocol']['windows_labelled']:,} labelled windows):")
        for name in ("precision", "recall", "f1", "pr_auc"):
            low_high = ci.get(name, ())
            interval = f"[{low_high[0]:.3f}, {low_high[1]:.3f}]" if len(low_high) == 2 else "–"
            print(f"  {name:<9} {m[name]:.4f}  95% CI {interval}")
    for note in report.get("notes", []):
        print(f"note: {note}")
