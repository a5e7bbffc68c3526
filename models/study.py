"""Nested cross-validation of training recipes on the C-MAPSS training engines only.

Which recipe should ``make model`` use? This program answers with the training engines
alone; the test engines are never read. Each recipe is run whole, as ``make model`` would
run it on its training engines (split or folds, early stopping, the threshold), inside each
of 5 outer device-grouped folds of the 100 FD001 training engines; the model and threshold
it produces are scored on the 20 outer engines it never saw. One difference: here the
normalisation is learnt on all 80 engines of the outer fold, while ``prognos train`` learns
it on the training devices of its split (all of them for ``folds``). Features: those of
:func:`models.data.cmapss_spec` (the 14 varying sensors and ``cycle``).

Recipes (GRU throughout: the architecture choice is a separate step of the recipe, and the
GRU is what it chose; hidden 48, seed 7 and the other defaults of :class:`TrainConfig` as
they were before this study, i.e. no RUL head unless named):

``single``
    The current recipe: one network trained on 80% of the engines, early stopping and the
    max-F1 threshold on the other 20%.
``single-oof``
    The same network; the threshold chosen instead on the pooled out-of-fold predictions
    of a 5-fold device-grouped cross-validation over all the recipe's engines.
``seeds5``
    Five networks (seeds 7..11) on the single split, risk averaged; threshold on the 20%.
``folds5``
    The five cross-validation networks (each trained on 4/5 of the engines, early-stopped
    on the fifth), risk averaged; threshold on the pooled out-of-fold predictions.
``single-rul``, ``folds5-rul``
    As ``single`` and ``folds5`` with the auxiliary RUL head (``rul_weight`` 1.0).

Selection rule, fixed before the study was run:

* Primary metric: nested-CV F1, pooled: the confusion matrices of the 5 outer folds summed
  (every sequence of the 100 engines, each scored by a model and threshold that did not see
  its engine), F1 of the sum. Mean ± std of the per-fold F1 and of PR-AUC are reported too.
* A recipe replaces ``single`` only if its pooled nested F1 is higher. Among the recipes
  within 0.005 of the best pooled F1, the one with the fewest networks is chosen, then the
  one without the RUL head.

Run: ``nice -n 10 python -m models.study --data ../shared/data/cmapss --out FILE.json``
(80 networks, 8 to 15 minutes on one CPU thread). The result for FD001 is committed as
``models/studies/fd001_recipes.json`` (:data:`STUDY_FD001`), a replication with ``--seed 8
--outer-seed 2000`` beside it; ``prognos train`` puts the summary in ``training.json``, the
report and the model card when the training data and sensors match and it runs the recipe
the study chose (:func:`recipe_of`).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.data import SequenceSet, WindowTable, cmapss_spec, load_cmapss, window_features
from models.evaluation import binary_metrics, choose_threshold
from models.features import fit_norm_stats, normalise
from models.training import (
    TrainConfig,
    _device_folds,
    _fit,
    _predict,
    _require_torch,
    _seed_everything,
    build_sequences,
    rul_target,
)

logger = logging.getLogger(__name__)

__all__ = ["RECIPES", "STUDY_FD001", "main", "recipe_of", "run_study", "summary_for"]

#: Recipe name -> networks it exports (for the tie-break of the selection rule).
RECIPES: dict[str, int] = {
    "single": 1,
    "single-oof": 1,
    "seeds5": 5,
    "folds5": 5,
    "single-rul": 1,
    "folds5-rul": 5,
}
TIE = 0.005
OUTER_SEED = 1000
#: The committed study of the FD001 training engines.
STUDY_FD001 = Path(__file__).resolve().parent / "studies" / "fd001_recipes.json"
DESIGN = (
    "5 outer device-grouped folds of the 100 training engines; each recipe run whole on 80 "
    "engines, scored on every sequence of the 20 it never saw; GRU, seed 7"
)


def recipe_of(config: TrainConfig) -> str | None:
    """The study's name for the recipe ``config`` runs (GRU, defaults otherwise), or None."""
    if config.arch not in ("gru", "auto") or config.folds != 5:
        return None
    rul = {0.0: "", 1.0: "-rul"}.get(config.rul_weight)
    if rul is None:
        return None
    if config.ensemble == "none":
        return "single" + rul
    if config.ensemble == "folds":
        return "folds5" + rul
    if config.ensemble == "seeds" and config.seeds == 5 and not rul:
        return "seeds5"
    return None


def summary_for(
    data_sha256: str, sensors: tuple[str, ...], path: Path = STUDY_FD001
) -> dict[str, Any] | None:
    """The committed study's summary, if it was run on this data with these sensors."""
    if not path.is_file():
        return None
    study = json.loads(path.read_text(encoding="utf-8"))
    if study.get("data", {}).get("sha256") != data_sha256:
        return None
    if tuple(study.get("sensors", ())) != tuple(sensors):
        return None
    return {
        "file": f"models/studies/{path.name}",
        "command": "python -m models.study --data ../shared/data/cmapss --out "
        f"models/studies/{path.name}",
        "design": DESIGN,
        "rule": study["rule"],
        "chosen": study["chosen"],
        "results": {
            name: {
                "networks": r["networks"],
                "pooled_f1": r["pooled"]["f1"],
                "f1_mean": r["f1_mean"],
                "f1_std": r["f1_std"],
                "pr_auc_mean": r["pr_auc_mean"],
                "pr_auc_std": r["pr_auc_std"],
            }
            for name, r in study["results"].items()
        },
    }


def _pooled(confusions: list[list[list[int]]]) -> dict[str, float]:
    (tn, fp), (fn, tp) = np.sum(np.asarray(confusions), axis=0).tolist()
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "f1": round(2 * tp / max(2 * tp + fp + fn, 1), 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def _fit_gru(
    torch: Any,
    seqs: SequenceSet,
    x: npt.NDArray[np.float32],
    rul: npt.NDArray[np.float64],
    trn_dev: list[str],
    val_dev: list[str],
    cfg: TrainConfig,
    seed: int,
) -> Any:
    trn, val = np.isin(seqs.device, trn_dev), np.isin(seqs.device, val_dev)
    net, _ = _fit(
        torch, "gru", x[trn], seqs.y[trn], x[val], seqs.y[val], cfg, seed,
        lambda _line: None, "study", rul_train=rul[trn],
    )  # fmt: skip
    return net


def _outer_fold(
    torch: Any,
    config: TrainConfig,
    seqs: SequenceSet,
    windows: WindowTable,
    rul: npt.NDArray[np.float64],
    inner: list[str],
    held: list[str],
) -> dict[str, tuple[float, npt.NDArray[np.float64]]]:
    """Each recipe run on the ``inner`` engines: its threshold and its risk on ``held``."""
    rul_cfg = replace(config, rul_weight=1.0)
    y = seqs.y
    test_m = np.isin(seqs.device, held)
    inner_m = np.isin(seqs.device, inner)
    norm = fit_norm_stats(windows.features[np.isin(windows.device, inner)])
    x = normalise(seqs.x, norm)

    # The single split, drawn as train_model draws it.
    rng = np.random.default_rng(config.seed)
    shuffled = [inner[i] for i in rng.permutation(len(inner))]
    n_val = max(1, round(config.val_fraction * len(inner)))
    val_dev, trn_dev = sorted(shuffled[:n_val]), sorted(shuffled[n_val:])
    val_m = np.isin(seqs.device, val_dev)

    # 5-fold device-grouped CV over all the recipe's engines, with and without the RUL head.
    folds = _device_folds(inner, config.folds, config.seed + 1)
    cv_risk: dict[str, list[npt.NDArray[np.float64]]] = {"": [], "-rul": []}
    oof_thr: dict[str, float] = {}
    for tag, cfg in (("", config), ("-rul", rul_cfg)):
        pooled = np.full(len(y), np.nan)
        for i, fold in enumerate(folds):
            rest = sorted(set(inner) - set(fold))
            net = _fit_gru(torch, seqs, x, rul, rest, fold, cfg, config.seed + 100 + i)
            fm = np.isin(seqs.device, fold)
            pooled[fm] = _predict(torch, net, x[fm])
            cv_risk[tag].append(_predict(torch, net, x[test_m]))
        oof_thr[tag] = choose_threshold(y[inner_m], pooled[inner_m])

    single = _fit_gru(torch, seqs, x, rul, trn_dev, val_dev, config, config.seed)
    single_rul = _fit_gru(torch, seqs, x, rul, trn_dev, val_dev, rul_cfg, config.seed)
    seed_nets = [single] + [
        _fit_gru(torch, seqs, x, rul, trn_dev, val_dev, config, config.seed + s)
        for s in range(1, 5)
    ]

    def on_val(nets: list[Any]) -> tuple[float, npt.NDArray[np.float64]]:
        v = np.mean([_predict(torch, n, x[val_m]) for n in nets], axis=0)
        t = np.mean([_predict(torch, n, x[test_m]) for n in nets], axis=0)
        return choose_threshold(y[val_m], v), t

    return {
        "single": on_val([single]),
        "single-oof": (oof_thr[""], _predict(torch, single, x[test_m])),
        "seeds5": on_val(seed_nets),
        "folds5": (oof_thr[""], np.mean(cv_risk[""], axis=0)),
        "single-rul": on_val([single_rul]),
        "folds5-rul": (oof_thr["-rul"], np.mean(cv_risk["-rul"], axis=0)),
    }


def run_study(
    directory: str,
    say: Callable[[str], None] = print,
    *,
    seed: int = 7,
    outer_seed: int = OUTER_SEED,
) -> dict[str, Any]:
    """Run every recipe in every outer fold; return per-fold and pooled figures.

    ``seed`` is the recipes' seed (as ``prognos train --seed``), ``outer_seed`` draws the
    outer folds; other values than the defaults give a replication of the study.
    """
    torch = _require_torch()
    config = replace(TrainConfig(), arch="gru", threads=1, rul_weight=0.0, seed=seed)
    _seed_everything(torch, config.seed, config.threads)
    spec = cmapss_spec()
    rec = load_cmapss(directory, "FD001", "train")
    seqs = build_sequences(rec, spec, phases=config.phases)
    windows = window_features(rec, spec)
    devices = sorted(set(seqs.device.tolist()))
    rul = rul_target(seqs, spec, replace(config, rul_weight=1.0))
    outer = _device_folds(devices, 5, outer_seed)
    per_fold: dict[str, list[dict[str, Any]]] = {r: [] for r in RECIPES}
    started = time.perf_counter()
    for o, held in enumerate(outer):
        inner = sorted(set(devices) - set(held))
        outcome = _outer_fold(torch, config, seqs, windows, rul, inner, held)
        test_m = np.isin(seqs.device, held)
        for name, (thr, risk) in outcome.items():
            m = binary_metrics(seqs.y[test_m], risk, thr)
            per_fold[name].append(m)
            say(
                f"outer {o + 1}/5 {name:<11} F1 {m['f1']:.4f} PR-AUC {m['pr_auc']:.4f} "
                f"thr {thr:.3f} cm {m['confusion_matrix']}  "
                f"({time.perf_counter() - started:.0f} s)"
            )

    results: dict[str, Any] = {}
    for name, ms in per_fold.items():
        f1 = [m["f1"] for m in ms]
        ap = [m["pr_auc"] for m in ms]
        results[name] = {
            "networks": RECIPES[name],
            "pooled": _pooled([m["confusion_matrix"] for m in ms]),
            "f1_mean": round(float(np.mean(f1)), 4),
            "f1_std": round(float(np.std(f1)), 4),
            "pr_auc_mean": round(float(np.mean(ap)), 4),
            "pr_auc_std": round(float(np.std(ap)), 4),
            "per_fold": ms,
        }
    best = max(r["pooled"]["f1"] for r in results.values())
    close = [
        n
        for n, r in results.items()
        if r["pooled"]["f1"] >= best - TIE and r["pooled"]["f1"] > results["single"]["pooled"]["f1"]
    ]
    chosen = (
        min(close, key=lambda n: (RECIPES[n], n.endswith("-rul"), list(RECIPES).index(n)))
        if close
        else "single"
    )
    return {
        "data": {"source": rec.name, "sha256": rec.data_sha256, "devices": len(devices)},
        "sensors": list(spec.sensors),
        "seed": seed,
        "outer_seed": outer_seed,
        "outer_folds": [sorted(h) for h in outer],
        "rule": (
            "highest pooled nested-CV F1; replaces 'single' only if higher than its; among "
            f"recipes within {TIE} of the best, fewest networks, then no RUL head"
        ),
        "results": results,
        "chosen": chosen,
        "seconds": round(time.perf_counter() - started, 1),
        "torch": str(torch.__version__),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m models.study --data DIR --out FILE``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--data", default="../shared/data/cmapss", help="C-MAPSS folder")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--seed", type=int, default=7, help="the recipes' seed (default 7)")
    parser.add_argument(
        "--outer-seed", type=int, default=OUTER_SEED, help=f"outer folds (default {OUTER_SEED})"
    )
    args = parser.parse_args(argv)
    study = run_study(
        args.data,
        say=lambda line: print(line, flush=True),
        seed=args.seed,
        outer_seed=args.outer_seed,
    )
    Path(args.out).write_text(json.dumps(study, indent=2) + "\n", encoding="utf-8")
    print(f"{'recipe':<11} nets  pooled F1  F1 mean ± std    PR-AUC mean ± std")
    for name, r in study["results"].items():
        print(
            f"{name:<11} {r['networks']:>4}  {r['pooled']['f1']:.4f}     "
            f"{r['f1_mean']:.4f} ± {r['f1_std']:.4f}  {r['pr_auc_mean']:.4f} ± {r['pr_auc_std']:.4f}"
        )
    print(f"chosen: {study['chosen']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
