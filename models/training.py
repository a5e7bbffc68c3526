"""Training, model selection and ONNX export (PyTorch; the ``train`` extra).

:func:`train_model` runs the whole recipe, deterministically for a given seed:

1. windows at ``phases`` alignments (the stream's window boundaries fall anywhere in a
   device's life, so the model sees every phase), labelled "fails within H windows";
2. normalisation statistics learned on the training devices only;
3. k-fold device-grouped cross-validation to choose the architecture (``--arch auto``:
   GRU vs 1-D CNN, by mean validation PR-AUC), each network early-stopped on its
   held-out fold, with the auxiliary RUL head as a multi-task regulariser
   (``rul_weight``);
4. the model, by ``ensemble``:

   * ``"seeds"`` (the default): a device-grouped train/validation split first
     (cross-validation on the training devices only), ``seeds`` networks of the chosen
     architecture trained on the same split from seeds ``seed``, ``seed + 1``, ...,
     each early-stopped on the validation devices, their risks averaged
     (:class:`models.network.MeanRisk`); the threshold is the max-F1 threshold of that
     mean on the validation devices;
   * ``"folds"``: the k cross-validation networks of the chosen
     architecture, their risks averaged (:class:`models.network.MeanRisk`), over all the
     devices (no separate validation split); the alert threshold is the max-F1 threshold
     of the pooled out-of-fold predictions (each device scored by the member that did not
     see it);
   * ``"none"``: a device-grouped train/validation split first (cross-validation on the
     training devices only), one network trained with early stopping on the validation
     devices, and the threshold chosen on them (max F1);

   ``python -m models.study`` compares these recipes by nested cross-validation;
5. a logistic-regression baseline on the same features and the same folds or split;
6. export: ``model.onnx`` (dynamic batch axis, metadata), ``manifest.json`` (SHA-256),
   ``parity.npz`` (64 inputs and PyTorch's outputs), ``training.json``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.data import (
    Recording,
    SequenceSet,
    WindowTable,
    check_trainable,
    make_sequences,
    window_features,
)
from models.drift import reference_from_features, write_reference
from models.errors import DataError, MissingDependencyError
from models.evaluation import average_precision, binary_metrics, choose_threshold
from models.features import (
    FeatureSpec,
    NormStats,
    RegimeNorm,
    fit_norm_stats,
    fit_regimes,
    normalise,
)
from models.metadata import MODEL_NAME, ModelMetadata, write_manifest

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainResult", "export_onnx", "train_model"]

Progress = Callable[[str], None]


def _require_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            "training needs PyTorch: install the training extra with "
            "pip install -c constraints.txt -e '.[train]'"
        ) from exc
    return torch


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters and switches of one training run.

    Attributes:
        arch: ``"gru"``, ``"cnn"`` or ``"auto"`` (choose by cross-validation).
        seed: Seed of every random choice (split, initialisation, batches).
        epochs: Maximum epochs per fit.
        patience: Early stopping: epochs without a better validation loss.
        batch_size: Minibatch size.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        hidden: GRU hidden size / CNN channels.
        dropout: Dropout before the head.
        folds: Cross-validation folds (0 or 1: no cross-validation).
        val_fraction: Share of devices held out for validation.
        phases: Window alignments per device used for training (1..W readings).
        regimes: Operating regimes to normalise per (1: one global normalisation).
        threads: torch intra-op threads (1 keeps runs reproducible and the machine free).
        ensemble: ``"seeds"``: export the mean risk of ``seeds`` networks trained on one
            train/validation split from consecutive seeds, threshold on the validation
            devices; ``"folds"``: the mean risk of the cross-validation networks,
            threshold from their pooled out-of-fold predictions (needs ``folds`` > 1);
            ``"none"``: one network on a train/validation split.
        seeds: Networks of the ``"seeds"`` ensemble.
        rul_weight: Weight of an auxiliary remaining-useful-life loss (MSE on the RUL in
            windows, capped at ``rul_cap_windows`` and scaled to [0, 1]); 0 turns it off.
            The RUL head helps training only; the export has one output, the risk.
        rul_cap_windows: Cap of the auxiliary RUL target, in windows.
        model_version: Version string; derived from spec, arch and seed when empty.
    """

    arch: str = "auto"
    seed: int = 7
    epochs: int = 40
    patience: int = 6
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    hidden: int = 48
    dropout: float = 0.1
    folds: int = 5
    val_fraction: float = 0.2
    phases: int = 5
    regimes: int = 1
    threads: int = 1
    ensemble: str = "seeds"
    seeds: int = 5
    rul_weight: float = 0.0
    rul_cap_windows: float = 25.0
    model_version: str = ""


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_model` produced."""

    out_dir: Path
    metadata: ModelMetadata
    training: dict[str, Any]


def _seed_everything(torch: Any, seed: int, threads: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, threads))


def build_sequences(
    recording: Recording,
    spec: FeatureSpec,
    *,
    phases: int,
    regimes: RegimeNorm | None = None,
) -> SequenceSet:
    """Labelled sequences of a recording at ``phases`` window alignments.

    A recording with an event log (``recording.events``) is labelled from it, run by run,
    with the stream job's sequences (:func:`models.labels.labelled_sequences`); otherwise
    each device fails at ``recording.failure_times`` (:func:`models.data.make_sequences`).
    """
    from models.labels import labelled_sequences, seen_of, spans_of

    seen = seen_of(spans_of(recording.readings)) if recording.events is not None else {}
    parts = []
    for p in range(max(1, phases)):
        origin = spec.origin_seconds + p * spec.window_seconds / max(1, phases)
        windows = window_features(recording, spec, origin_seconds=origin, regimes=regimes)
        if recording.events is not None:
            parts.append(labelled_sequences(windows, spec, recording.events, seen, origin))
        else:
            parts.append(make_sequences(windows, spec, recording.failure_times))
    return SequenceSet.concat(parts)


def _fit(
    torch: Any,
    arch: str,
    x_train: npt.NDArray[np.float32],
    y_train: npt.NDArray[np.int64],
    x_val: npt.NDArray[np.float32],
    y_val: npt.NDArray[np.int64],
    config: TrainConfig,
    seed: int,
    progress: Progress,
    label: str,
    rul_train: npt.NDArray[np.float64] | None = None,
) -> tuple[Any, dict[str, Any]]:
    from models.network import build_network

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net: Any = build_network(arch, x_train.shape[2], config.hidden, config.dropout)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.float32))
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val.astype(np.float32))
    rul_t = None
    if config.rul_weight > 0 and rul_train is not None:
        rul_t = torch.from_numpy(rul_train.astype(np.float32))
    history: dict[str, Any] = {"train_loss": [], "val_loss": [], "val_pr_auc": []}
    best_loss, best_state, best_epoch, stale = np.inf, None, 0, 0
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        net.train()
        order = rng.permutation(len(yt))
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = torch.from_numpy(order[start : start + config.batch_size])
            opt.zero_grad()
            emb = net.embed(xt[idx])
            loss = loss_fn(net.head(emb).squeeze(-1), yt[idx])
            if rul_t is not None:
                loss = loss + config.rul_weight * torch.mean(
                    (net.rul_head(emb).squeeze(-1) - rul_t[idx]) ** 2
                )
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        net.eval()
        with torch.no_grad():
            logits = net(xv)
            val_loss = float(loss_fn(logits, yv))
            val_risk = torch.sigmoid(logits).numpy()
        pr_auc = average_precision(y_val, val_risk)
        history["train_loss"].append(round(total / len(yt), 5))
        history["val_loss"].append(round(val_loss, 5))
        history["val_pr_auc"].append(round(pr_auc, 5))
        if val_loss < best_loss - 1e-5:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
        progress(
            f"{label} epoch {epoch:>2}/{config.epochs}: train loss {total / len(yt):.4f}  "
            f"val loss {val_loss:.4f}  val PR-AUC {pr_auc:.4f}" + ("  *" if stale == 0 else "")
        )
        if stale >= config.patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    history["best_epoch"] = best_epoch
    history["seconds"] = round(time.perf_counter() - started, 2)
    return net, history


def rul_target(
    seqs: SequenceSet, spec: FeatureSpec, config: TrainConfig
) -> npt.NDArray[np.float64]:
    """The auxiliary RUL target: windows to failure, capped, scaled to [0, 1]."""
    capped = np.minimum(seqs.rul_seconds / spec.window_seconds, config.rul_cap_windows)
    return np.asarray(capped / config.rul_cap_windows, dtype=np.float64)


def _predict(torch: Any, net: Any, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    from models.network import risk_model

    with torch.no_grad():
        risk: npt.NDArray[np.float64] = risk_model(net)(torch.from_numpy(x)).numpy()
    return risk.astype(np.float64)


def _device_folds(devices: list[str], folds: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    shuffled = [devices[i] for i in rng.permutation(len(devices))]
    return [shuffled[i::folds] for i in range(folds)]


@dataclass
class FoldModels:
    """The networks of one architecture's cross-validation and what they predicted.

    Attributes:
        nets: One network per fold, trained on the other folds.
        oof_risk: Per sequence, the risk from the network whose fold held its device
            (NaN for sequences of devices outside the cross-validation).
        histories: Each network's training history.
    """

    nets: list[Any]
    oof_risk: npt.NDArray[np.float64]
    histories: list[dict[str, Any]]


def cross_validate(
    torch: Any,
    archs: tuple[str, ...],
    x: npt.NDArray[np.float32],
    seqs: SequenceSet,
    devices: list[str],
    config: TrainConfig,
    progress: Progress,
    rul: npt.NDArray[np.float64],
) -> tuple[dict[str, Any], dict[str, FoldModels]]:
    """Device-grouped k-fold cross-validation of each architecture.

    Returns:
        The summary (per architecture: mean and std over folds of the validation PR-AUC,
        best-threshold F1, loss, seconds) and, per architecture, the fold networks.
    """
    results: dict[str, Any] = {}
    models: dict[str, FoldModels] = {}
    folds = _device_folds(devices, config.folds, config.seed + 1)
    for arch in archs:
        scores: dict[str, list[float]] = {"pr_auc": [], "f1": [], "loss": [], "seconds": []}
        fm = FoldModels([], np.full(len(seqs), np.nan), [])
        models[arch] = fm
        for i, held in enumerate(folds):
            val = np.isin(seqs.device, held)
            trn = np.isin(seqs.device, devices) & ~val
            net, hist = _fit(
                torch,
                arch,
                x[trn],
                seqs.y[trn],
                x[val],
                seqs.y[val],
                config,
                config.seed + 100 + i,
                progress,
                f"cv {arch} fold {i + 1}/{len(folds)}",
                rul_train=rul[trn],
            )
            risk = _predict(torch, net, x[val])
            fm.nets.append(net)
            fm.histories.append(hist)
            fm.oof_risk[val] = risk
            thr = choose_threshold(seqs.y[val], risk)
            scores["pr_auc"].append(average_precision(seqs.y[val], risk))
            scores["f1"].append(binary_metrics(seqs.y[val], risk, thr)["f1"])
            scores["loss"].append(min(hist["val_loss"]))
            scores["seconds"].append(hist["seconds"])
        results[arch] = {f"{k}_mean": round(float(np.mean(v)), 4) for k, v in scores.items()}
        results[arch] |= {f"{k}_std": round(float(np.std(v)), 4) for k, v in scores.items()}
        results[arch]["per_fold_pr_auc"] = [round(v, 4) for v in scores["pr_auc"]]
        progress(
            f"cv {arch}: PR-AUC {results[arch]['pr_auc_mean']:.4f} ± "
            f"{results[arch]['pr_auc_std']:.4f}, F1 {results[arch]['f1_mean']:.4f}"
        )
    summary = {"folds": len(folds), "metric": "validation PR-AUC", "results": results}
    return summary, models


def _select(cv: Mapping[str, Any]) -> dict[str, str]:
    res = cv["results"]
    ranked = sorted(res, key=lambda a: -res[a]["pr_auc_mean"])
    best, other = ranked[0], ranked[-1]
    gap = res[best]["pr_auc_mean"] - res[other]["pr_auc_mean"]
    noise = max(res[best]["pr_auc_std"], res[other]["pr_auc_std"]) / np.sqrt(cv["folds"])
    if best != other and gap < noise and "gru" in res:
        # Within fold noise: prefer the GRU, whose state summarises any history length
        # the same way; the CNN's receptive field is fixed by its kernels.
        best = "gru"
        reason = (
            f"mean PR-AUC within fold noise ({gap:.4f} < {noise:.4f}); GRU preferred "
            "as the simpler order-aware summary of the window sequence"
        )
    else:
        reason = (
            f"highest mean validation PR-AUC ({res[best]['pr_auc_mean']:.4f} vs "
            f"{res[other]['pr_auc_mean']:.4f}, fold std ≤ "
            f"{max(res[best]['pr_auc_std'], res[other]['pr_auc_std']):.4f})"
        )
    return {"arch": best, "reason": reason}


def _baseline(
    x_train: npt.NDArray[np.float32],
    y_train: npt.NDArray[np.int64],
    x_val: npt.NDArray[np.float32],
    y_val: npt.NDArray[np.int64],
    seed: int,
) -> tuple[Any, float, dict[str, Any]]:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise MissingDependencyError(
            "the baseline needs scikit-learn: pip install -e '.[train]'"
        ) from exc
    clf = LogisticRegression(C=0.1, max_iter=2000, random_state=seed)
    clf.fit(x_train.reshape(len(x_train), -1), y_train)
    risk = clf.predict_proba(x_val.reshape(len(x_val), -1))[:, 1]
    thr = choose_threshold(y_val, risk)
    return clf, thr, binary_metrics(y_val, risk, thr)


class _MeanProba:
    """Fold classifiers averaged, with scikit-learn's ``predict_proba`` interface."""

    def __init__(self, members: list[Any]) -> None:
        self.members = members

    def predict_proba(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return np.asarray(np.mean([m.predict_proba(x) for m in self.members], axis=0))


def _baseline_folds(
    x: npt.NDArray[np.float32], seqs: SequenceSet, folds: list[list[str]], seed: int
) -> tuple[Any, float, dict[str, Any]]:
    """The baseline made like the ensemble: one classifier per fold, threshold out-of-fold."""
    oof = np.full(len(seqs), np.nan)
    members = []
    for held in folds:
        val = np.isin(seqs.device, held)
        clf, _, _ = _baseline(x[~val], seqs.y[~val], x[val], seqs.y[val], seed)
        oof[val] = clf.predict_proba(x[val].reshape(int(val.sum()), -1))[:, 1]
        members.append(clf)
    thr = choose_threshold(seqs.y, oof)
    return _MeanProba(members), thr, binary_metrics(seqs.y, oof, thr)


def export_onnx(net: Any, metadata: ModelMetadata, path: Path, *, opset: int = 18) -> None:
    """Export ``net`` as ``path``: risk output, a dynamic batch axis and metadata.

    ``net`` is a logit network (a sigmoid is added) or a :class:`models.network.MeanRisk`
    ensemble (exported as it is: it outputs risk).
    """
    torch = _require_torch()
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError("export needs onnx: pip install -e '.[train]'") from exc
    from models.network import risk_model

    k, f = metadata.input_shape
    head = risk_model(net).eval()
    example = torch.zeros(2, k, f)
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        # The GRU's initial state is built from the input's batch size inside the graph,
        # so the exporter's warning about batch sizes does not apply (parity tests check it).
        # The legacy (TorchScript) exporter is used on purpose: it emits the native ONNX GRU
        # op in well under a second; its deprecation and tracer notices are noise here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            head,
            (example,),
            str(tmp),
            input_names=[metadata.input_name],
            output_names=[metadata.output_name],
            dynamic_axes={metadata.input_name: {0: "batch"}, metadata.output_name: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    model = onnx.load(str(tmp))
    tmp.unlink()
    model.producer_name = "prognos"
    model.doc_string = (
        f"Prognos failure risk: P(fails within {metadata.spec.horizon_windows} "
        f"windows of {metadata.spec.window_seconds:g} s)"
    )
    del model.metadata_props[:]
    for key, value in sorted(metadata.to_props().items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def train_model(
    recording: Recording,
    spec: FeatureSpec,
    out_dir: str | Path,
    config: TrainConfig = TrainConfig(),
    *,
    progress: Progress | None = None,
    test: Recording | None = None,
    regime_centroids: Sequence[Sequence[float]] | None = None,
    windows: WindowTable | None = None,
) -> TrainResult:
    """Train, select, export. See the module docstring for the recipe.

    Args:
        recording: Training readings (devices with failure times).
        spec: The feature spec.
        out_dir: The model folder to write.
        config: Hyper-parameters.
        progress: Called with one line per epoch and step (default: the logger).
        test: Optional held-out test recording scored by the baseline for the report
            (the network's own test evaluation is :func:`models.evaluation.evaluate_cmapss`).
        regime_centroids: Starting centroids of the ``config.regimes`` operating regimes
            (from :func:`models.fleet.choose_regimes`); drawn at random when None.
        windows: The recording's window features, computed already (``prognos features``):
            then ``recording`` needs only its name, checksum and failure times, and one
            phase without regimes is trained.

    Raises:
        DataError: No failures (or only failures) in the training data, too few devices.
        MissingDependencyError: torch, onnx or scikit-learn is missing.
    """
    if config.ensemble not in ("seeds", "folds", "none"):
        raise ValueError(f"ensemble {config.ensemble!r}: choose 'seeds', 'folds' or 'none'")
    if config.ensemble == "seeds" and config.seeds < 1:
        raise ValueError(f"seeds={config.seeds}: the seeds ensemble needs at least 1 network")
    torch = _require_torch()
    say: Progress = progress or (lambda line: logger.info("%s", line))
    _seed_everything(torch, config.seed, config.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    if windows is not None and (config.phases > 1 or config.regimes > 1):
        raise DataError(
            "a features table holds one window alignment without regime normalisation: "
            "train from it with --phases 1 --regimes 1, or from the recording itself"
        )
    regimes = None
    if config.regimes > 1:
        if not recording.settings:
            raise DataError(f"{recording.name}: --regimes {config.regimes} needs setting columns")
        r = recording.readings
        regimes = fit_regimes(
            r[list(spec.sensors)].to_numpy(),
            r[list(recording.settings)].to_numpy(),
            recording.settings,
            config.regimes,
            seed=config.seed,
            init=regime_centroids,
        )
    say(
        f"windowing {recording.name}: W={spec.window_seconds:g} s, K={spec.sequence_length}, "
        f"H={spec.horizon_windows}, {config.phases} phase(s)"
    )
    if windows is None:
        seqs = build_sequences(recording, spec, phases=config.phases, regimes=regimes)
    else:
        seqs = make_sequences(windows, spec, recording.failure_times)
    check_trainable(seqs, spec, recording.name)
    devices = sorted(set(seqs.device.tolist()))
    positives = int(seqs.y.sum())
    say(f"{len(seqs)} sequences from {len(devices)} devices, {positives} positive")

    ensemble = config.ensemble == "folds" and config.folds > 1
    if config.ensemble == "folds" and not ensemble:
        say("no cross-validation (--folds 1): one network on a train/validation split")
    if ensemble:
        # Every device is in the cross-validation; each member early-stops on its own fold.
        val_devices, train_devices = [], devices
    else:
        rng = np.random.default_rng(config.seed)
        shuffled = [devices[i] for i in rng.permutation(len(devices))]
        n_val = max(1, round(config.val_fraction * len(devices)))
        val_devices, train_devices = sorted(shuffled[:n_val]), sorted(shuffled[n_val:])
    is_val = np.isin(seqs.device, val_devices)

    # Normalisation from training devices only (phase-0 windows, each window once).
    if windows is None:
        windows = window_features(recording, spec, regimes=regimes)
    norm: NormStats = fit_norm_stats(
        windows.features[np.isin(windows.device, train_devices)], regimes=regimes
    )
    x = normalise(seqs.x, norm)
    rul = rul_target(seqs, spec, config)
    # The training distribution the stream job watches its inputs against (models.drift).
    reference = reference_from_features(
        windows.features[np.isin(windows.device, train_devices)], spec, norm
    )
    write_reference(out, reference)

    archs = ("gru", "cnn") if config.arch == "auto" else (config.arch,)
    cv: dict[str, Any] | None = None
    fold_models: dict[str, FoldModels] = {}
    if config.folds > 1:
        cv, fold_models = cross_validate(torch, archs, x, seqs, train_devices, config, say, rul)
        selection = _select(cv) if len(archs) > 1 else {"arch": archs[0], "reason": "--arch given"}
    else:
        selection = {
            "arch": "gru" if config.arch == "auto" else config.arch,
            "reason": "no cross-validation (--folds 1)",
        }
    arch = selection["arch"]
    say(f"chosen architecture: {arch} ({selection['reason']})")

    history: dict[str, Any] | list[dict[str, Any]]
    if ensemble:
        from models.network import MeanRisk

        members = fold_models[arch]
        net: Any = MeanRisk(members.nets).eval()
        history = members.histories
        # Out-of-fold: each device scored by the member that did not see it.
        eval_mask = np.ones(len(seqs), dtype=bool)
        eval_risk = members.oof_risk
        chosen_on = (
            f"pooled out-of-fold predictions of the {len(members.nets)} cross-validation "
            f"networks over all {len(devices)} training devices (max F1)"
        )
    else:
        count = config.seeds if config.ensemble == "seeds" else 1
        fits = [
            _fit(
                torch,
                arch,
                x[~is_val],
                seqs.y[~is_val],
                x[is_val],
                seqs.y[is_val],
                config,
                config.seed + s,
                say,
                f"final {arch}"
                + (f" {s + 1}/{count} (seed {config.seed + s})" if count > 1 else ""),
                rul_train=rul[~is_val],
            )
            for s in range(count)
        ]
        if count > 1:
            from models.network import MeanRisk

            net = MeanRisk([f[0] for f in fits]).eval()
            history = [f[1] for f in fits]
            chosen_on = f"the mean risk of the {count} networks on the validation devices (max F1)"
        else:
            net, history = fits[0]
            chosen_on = "validation devices (max F1)"
        eval_mask = is_val
        eval_risk = _predict(torch, net, x[is_val])
    y_eval = seqs.y[eval_mask]
    threshold = choose_threshold(y_eval, eval_risk)
    val_metrics = binary_metrics(y_eval, eval_risk, threshold)
    say(
        f"{'out-of-fold' if ensemble else 'validation'}: F1 {val_metrics['f1']:.4f} "
        f"PR-AUC {val_metrics['pr_auc']:.4f} at threshold {threshold:.4f}"
    )

    if ensemble:
        folds = _device_folds(train_devices, config.folds, config.seed + 1)
        clf, b_thr, b_val = _baseline_folds(x, seqs, folds, config.seed)
        b_model = (
            f"logistic regression (C=0.1) on the K x F normalised features, the mean of "
            f"{len(folds)} fold models; threshold from their pooled out-of-fold predictions"
        )
    else:
        clf, b_thr, b_val = _baseline(
            x[~is_val], seqs.y[~is_val], x[is_val], seqs.y[is_val], config.seed
        )
        b_model = "logistic regression (C=0.1) on the K x F normalised features"
    baseline: dict[str, Any] = {
        "model": b_model,
        "threshold": round(b_thr, 6),
        "validation": b_val,
    }
    if test is not None:
        baseline["test"] = _baseline_on_test(clf, b_thr, test, spec, norm)
    say(f"baseline validation: F1 {b_val['f1']:.4f} PR-AUC {b_val['pr_auc']:.4f}")

    n_members = len(net.members) if hasattr(net, "members") else 1
    tag = arch
    if n_members > 1:
        tag = f"{arch}-x{n_members}" if ensemble else f"{arch}-seeds{n_members}"
    version = config.model_version or f"{spec.name}-{tag}-s{config.seed}"
    metadata = ModelMetadata(
        spec=spec,
        norm=norm,
        threshold=round(threshold, 6),
        model_version=version,
        data_sha256=recording.data_sha256,
        arch=arch,
        extra={"members": n_members} if n_members > 1 else {},
    )
    onnx_path = out / MODEL_NAME
    export_onnx(net, metadata, onnx_path)
    pool = x[eval_mask]
    pick = np.random.default_rng(config.seed).choice(len(pool), min(64, len(pool)), replace=False)
    parity_x = pool[pick]
    parity_y = _predict(torch, net, parity_x)
    np.savez_compressed(out / "parity.npz", x=parity_x, y=parity_y.astype(np.float32))
    created = os.environ.get("SOURCE_DATE_EPOCH")
    created_at = datetime.fromtimestamp(int(created), UTC) if created else datetime.now(UTC)
    manifest = write_manifest(out, metadata, created=created_at.isoformat(timespec="seconds"))
    # What the export holds: the RUL head is used in training only.
    n_params = sum(int(p.numel()) for name, p in net.named_parameters() if "rul_head" not in name)
    training = {
        "config": asdict(config),
        "data": {
            "source": recording.name,
            "sha256": recording.data_sha256,
            "devices": len(devices),
            "train_devices": len(train_devices),
            "val_devices": val_devices,
            "sequences": len(seqs),
            "positives": positives,
        },
        "spec": spec.to_dict(),
        "selection": selection,
        "cross_validation": cv,
        "members": n_members,
        "history": history,
        "threshold": {"value": round(threshold, 6), "chosen_on": chosen_on},
        "validation": val_metrics,
        "baseline": baseline,
        "parameters": n_params,
        "torch": str(torch.__version__),
        "seconds": round(time.perf_counter() - started, 1),
        "sha256": manifest["sha256"],
    }
    (out / "training.json").write_text(json.dumps(training, indent=2) + "\n", encoding="utf-8")
    say(
        f"exported {onnx_path} (sha256 {manifest['sha256'][:12]}, {n_params} parameters) in "
        f"{training['seconds']:.0f} s"
    )
    return TrainResult(out, replace(metadata, sha256=manifest["sha256"]), training)


def _baseline_on_test(
    clf: Any, threshold: float, test: Recording, spec: FeatureSpec, norm: NormStats
) -> dict[str, Any]:
    step = test.step_seconds or spec.window_seconds
    windows = window_features(test, spec, align_end=True, regimes=norm.regimes)
    history = spec.sequence_length * spec.window_seconds
    last = make_sequences(
        windows, spec, test.failure_times, last_only=True, min_history_seconds=history - step
    )
    x = normalise(last.x, norm)
    risk = clf.predict_proba(x.reshape(len(x), -1))[:, 1]
    return binary_metrics(last.y, risk, threshold)
