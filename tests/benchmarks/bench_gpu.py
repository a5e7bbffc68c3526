"""The scorer on the CUDA (and TensorRT) execution providers next to one CPU core.

Run::

    .venv/bin/python tests/benchmarks/bench_gpu.py [--out bench-results/gpu.json]

Where onnxruntime offers ``CUDAExecutionProvider`` and an NVIDIA GPU answers
``nvidia-smi``, the committed model is loaded with :meth:`models.scorer.Scorer.load` for
each GPU provider (TensorRT only when offered), the provider that actually runs the model
is checked (``Scorer.active_provider``), and rows/s are measured for batch sizes 1 to
8192 next to the CPU provider with one intra-op thread. Each figure is the best of
``--repeats`` timed blocks of about ``--block`` seconds (after warm-up, which for TensorRT
includes building the engine for each batch shape). Elsewhere it prints
"not measured: no GPU on this machine" and saves that.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.common import ROOT, save

BATCHES = (1, 8, 64, 512, 4096, 8192)
GPU_PROVIDERS = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "tensorrt"}


def gpu_name() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (
        out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    )


def rate(scorer: Any, x: np.ndarray, block_s: float, repeats: int) -> float:
    scorer.score(x)
    scorer.score(x)
    started = time.perf_counter()
    scorer.score(x)
    calls = max(1, int(block_s / max(time.perf_counter() - started, 1e-7)))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            scorer.score(x)
        best = min(best, time.perf_counter() - started)
    return len(x) * calls / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--block", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import onnxruntime as ort

    from models.scorer import Scorer

    available = ort.get_available_providers()
    gpu = gpu_name()
    offered = [p for p in GPU_PROVIDERS if p in available]
    if not offered or gpu is None:
        why = (
            "no GPU on this machine"
            if gpu is None
            else f"onnxruntime {ort.__version__} offers no GPU provider ({', '.join(available)})"
        )
        print(f"GPU scorer: not measured: {why}")
        save(
            "gpu",
            {"measured": False, "reason": why, "available_providers": available},
            Path(args.out) if args.out else None,
        )
        return 0

    model = ROOT / "models" / "default"
    cpu = Scorer.load(model, providers="cpu", intra_op_threads=1)
    k, f = cpu.input_shape
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    scorers = {"CPUExecutionProvider": cpu}
    for provider in offered:
        try:
            s = Scorer.load(model, providers=[GPU_PROVIDERS[provider]])
        except Exception as exc:  # report, do not hide: a provider that fails to load
            print(f"{provider}: failed to load ({exc})", file=sys.stderr)
            continue
        if s.active_provider != provider:
            print(f"{provider}: requested, but {s.active_provider} runs the model", file=sys.stderr)
            continue
        scorers[provider] = s
    for n in BATCHES:
        x = rng.normal(size=(n, k, f)).astype(np.float32)
        row: dict[str, Any] = {"batch": n}
        for provider, s in scorers.items():
            row[provider] = round(rate(s, x, args.block, args.repeats), 1)
        for provider in scorers:
            if provider != "CPUExecutionProvider":
                row[f"{provider}_x_cpu"] = round(row[provider] / row["CPUExecutionProvider"], 2)
        rows.append(row)
    names = list(scorers)
    print(f"GPU {gpu}; onnxruntime {ort.__version__}; CPU provider with 1 intra-op thread\n")
    print("| batch | " + " | ".join(f"{p} rows/s" for p in names) + " | GPU x 1 CPU core |")
    print("| ---: |" + " ---: |" * (len(names) + 1))
    for r in rows:
        best = max((r.get(f"{p}_x_cpu", 0) for p in names[1:]), default=0)
        print(f"| {r['batch']} | " + " | ".join(f"{r[p]:,.0f}" for p in names) + f" | {best:.1f} |")
    at_4096 = next(r for r in rows if r["batch"] == 4096)
    ratio = max(at_4096.get(f"{p}_x_cpu", 0) for p in names[1:]) if len(names) > 1 else None
    save(
        "gpu",
        {
            "measured": len(names) > 1,
            "gpu": gpu,
            "providers_verified": names,
            "rows": rows,
            "ratio_4096": ratio,
        },
        Path(args.out) if args.out else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
