"""Scorer throughput against a bare ONNX Runtime session on the same model and batches.

Not a test (pytest does not collect it): a program that prints a Markdown table and saves
JSON. Both sides use the same session options (1 intra-op thread, sequential, all graph
optimisations) and the same float32 batches; the Scorer adds its checks (shape, finite
values) and its output handling, and runs a batch of more than ``CPU_CHUNK_ROWS`` rows in
parts (faster than the bare session's one call: a ratio above 1 there). Target: the
Scorer's overhead stays within 10% of the bare session (ratio >= 0.90) from batch 64 up.

Usage::

    python tests/benchmarks/bench_scorer.py [OUT_JSON] [--model models/default] [--blocks 100]

Rates are each side's best 20 ms block out of 100 alternated blocks (the least disturbed
by other processes); the paired median is the median over blocks of bare time / Scorer time.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.scorer import Scorer  # noqa: E402

BATCHES = (1, 8, 64, 512, 4096, 8192)


def _paired(
    bare: Callable[[], Any], scorer: Callable[[], Any], rows: int, block_s: float, blocks: int
) -> tuple[float, float, float]:
    """Alternate short timed blocks of the two sides (so drift and neighbours' load hit both
    alike); return each side's best rows/s and the median of the paired per-block ratios."""
    bare()
    scorer()
    start = time.perf_counter()
    bare()
    calls = max(1, int(block_s / max(time.perf_counter() - start, 1e-7)))
    bare_times, scorer_times = [], []
    for _ in range(blocks):
        for fn, times in ((bare, bare_times), (scorer, scorer_times)):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times.append(time.perf_counter() - start)
    ratios = sorted(b / s for b, s in zip(bare_times, scorer_times, strict=True))
    return (
        rows * calls / min(bare_times),
        rows * calls / min(scorer_times),
        ratios[len(ratios) // 2],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="bench-results/scorer.json")
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--block", type=float, default=0.02, help="seconds per timed block")
    parser.add_argument("--blocks", type=int, default=100, help="timed blocks per side")
    parser.add_argument("--providers", default="cpu")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    scorer = Scorer.load(args.model, providers=args.providers)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    bare = ort.InferenceSession(str(scorer.path), options, providers=scorer.providers)
    name_in, name_out = bare.get_inputs()[0].name, bare.get_outputs()[0].name
    k, f = scorer.input_shape
    rng = np.random.default_rng(0)
    rows = []
    for n in BATCHES:
        x = rng.normal(size=(n, k, f)).astype(np.float32)
        assert np.allclose(scorer.score(x), bare.run([name_out], {name_in: x})[0])
        bare_rate, scorer_rate, paired = _paired(
            lambda x=x: bare.run([name_out], {name_in: x}),
            lambda x=x: scorer.score(x),
            n,
            args.block,
            args.blocks,
        )
        rows.append(
            {
                "batch": n,
                "bare_rows_per_s": round(bare_rate, 1),
                "scorer_rows_per_s": round(scorer_rate, 1),
                "ratio": round(scorer_rate / bare_rate, 4),
                "paired_median_ratio": round(paired, 4),
            }
        )

    print(
        f"model {scorer.metadata.model_version} ({scorer.metadata.arch}, K={k}, F={f}), "
        f"provider {scorer.active_provider}, 1 intra-op thread, onnxruntime {ort.__version__}"
    )
    print()
    print(
        "| batch | bare session rows/s | Scorer rows/s | Scorer / bare (best) | "
        "Scorer / bare (paired median) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['batch']} | {r['bare_rows_per_s']:,.0f} | {r['scorer_rows_per_s']:,.0f} | "
            f"{r['ratio']:.3f} | {r['paired_median_ratio']:.3f} |"
        )
    worst = min(r["ratio"] for r in rows if r["batch"] >= 64)  # best-of-blocks ratio
    verdict = "met" if worst >= 0.90 else "NOT met"
    print(f"\nworst ratio from batch 64 up: {worst:.3f} (target >= 0.90: {verdict})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "model": scorer.metadata.model_version,
                "sha256": scorer.metadata.sha256,
                "provider": scorer.active_provider,
                "onnxruntime": ort.__version__,
                "machine": platform.platform(),
                "processor": platform.processor(),
                "rows": rows,
                "worst_ratio_from_64": worst,
                "target_met": worst >= 0.90,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
