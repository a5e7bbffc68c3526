"""Fuzzing the reading decoders: atheris for a bounded time, hypothesis byte mutations, and
the inputs fuzzing found kept as regression cases.

The contract is :mod:`tests.reliability.decoder_contract`. The atheris run lasts
``fuzz_seconds`` (20 s in CI, 300 s with ``PROGNOS_CHAOS_LONG=1``); a contract failure
fails the test with the input, which is also left in the test's temporary folder.
Where atheris is not installed, random byte mutations run for the same time instead, and
the report says so.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.decoder_contract import check, seed_inputs, write_fuzz_inputs
from tests.reliability.harness import REPORT, ChaosSettings

HERE = Path(__file__).resolve().parent

# Inputs that broke the contract when fuzzing found them, fixed in ingest.codec.decode.
FOUND = {
    # json's recursion limit: RecursionError escaped decode (a poison message would stop
    # a consumer instead of being dead-lettered).
    "deep-nesting": b"[" * 50_000,
    # A \u escape makes a lone surrogate; the reading decoded, but could be neither
    # encoded nor dead-lettered (EncodeError from the dead-letter path).
    "lone-surrogate": b'{"v":1,"d":"e1","t":"2026-01-01T00:00:00.000Z","s":0,'
    b'"x":{"new_\\ud800r":12.5}}',
    "lone-surrogate-device": b'{"v":1,"d":"\\udc00","t":"2026-01-01T00:00:00.000Z","s":0,'
    b'"x":{"s2":600.0}}',
    # An empty unknown key: the DecodeError named no field.
    "empty-key": b'{"v":1,"d":"e1","t":"2026-01-01T00:00:00.000Z","":60,"s":1,"x":{"s2":600.0}}',
}


@pytest.mark.parametrize("name", sorted(FOUND))
def test_inputs_fuzzing_found_keep_the_contract(name: str) -> None:
    check(FOUND[name])


def test_a_surrogate_pair_is_still_accepted() -> None:
    from ingest.codec import decode

    reading = decode(
        b'{"v":1,"d":"fan-\\ud83d\\ude00","t":"2026-01-01T00:00:00.000Z","s":0,"x":{"s2":600.0}}'
    )
    assert reading.device_id == "fan-\U0001f600"


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed input with a few byte-level edits: insert, delete, replace, duplicate a span."""
    data = bytearray(draw(st.sampled_from(seed_inputs())))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        at = draw(st.integers(0, len(data)))
        if op == "insert":
            data[at:at] = draw(
                st.binary(min_size=1, max_size=8)
                | st.sampled_from(
                    [b"\\ud800", b"NaN", b"1e400", b"[", b"{", b'"', b"\\", b"-", b"null", b"\xff"]
                )
            )
        elif op == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "repeat":
            span = bytes(data[at : at + draw(st.integers(1, 16))])
            data[at:at] = span * draw(st.integers(1, 50))
    return bytes(data)


@given(mutated())
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_decoder_contract_under_byte_mutations(data: bytes) -> None:
    check(data)


def _random_mutation_fuzz(seconds: float, seed: int) -> tuple[int, list[bytes]]:
    """Where atheris is not installed: random byte mutations of the seeds for ``seconds``.
    Returns the inputs tried and those that broke the contract."""
    import random

    from tests.reliability.decoder_contract import DICTIONARY, ContractBroken

    rng = random.Random(seed)
    seeds = seed_inputs()
    tokens = [t.encode() for t in DICTIONARY]
    runs = 0
    broken: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(broken) < 10:
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            at = rng.randint(0, len(data))
            op = rng.random()
            if op < 0.3:
                data[at:at] = rng.choice(tokens)
            elif op < 0.5:
                data[at:at] = rng.randbytes(rng.randint(1, 4))
            elif op < 0.7 and data:
                del data[at : at + rng.randint(1, 8)]
            elif op < 0.9 and at < len(data):
                data[at] = rng.randrange(256)
            else:
                data[at:at] = bytes(data[at : at + rng.randint(1, 16)]) * rng.randint(1, 200)
        runs += 1
        try:
            check(bytes(data))
        except ContractBroken:
            broken.append(bytes(data))
    return runs, broken


def test_fuzz_decoders_for_a_bounded_time(chaos: ChaosSettings, tmp_path: Path) -> None:
    """Coverage-guided fuzzing (atheris) of decode and the validators for ``fuzz_seconds``;
    where atheris cannot be installed (it has wheels for Linux x86-64 only), random byte
    mutations for the same time, said so in the report."""
    started = time.monotonic()
    try:
        import atheris  # noqa: F401
    except ImportError:
        runs, broken = _random_mutation_fuzz(chaos.fuzz_seconds, chaos.seed)
        REPORT.fuzz.append(
            {
                "engine": "random byte mutations of seed messages (atheris is not installed)",
                "runs": runs,
                "seconds": round(time.monotonic() - started, 1),
                "failures": len(broken),
            }
        )
        assert not broken, f"inputs that break the decoders' contract: {broken[:3]}"
        return
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    artifacts.mkdir()
    dictionary = tmp_path / "json.dict"
    write_fuzz_inputs(corpus, dictionary)
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "fuzz_decoders.py"),
            f"-max_total_time={chaos.fuzz_seconds}",
            "-max_len=70000",
            f"-seed={chaos.seed}",
            f"-dict={dictionary}",
            f"-artifact_prefix={artifacts}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=chaos.fuzz_seconds + 120,
        check=False,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    runs_found = re.search(r"Done (\d+) runs in (\d+) second", output)
    crashes = sorted(p.name for p in artifacts.iterdir())
    REPORT.fuzz.append(
        {
            "engine": "atheris (libFuzzer, coverage-guided) over ingest.codec and ingest.validation",
            "runs": int(runs_found.group(1)) if runs_found else 0,
            "seconds": round(time.monotonic() - started, 1),
            "corpus": sum(1 for _ in corpus.iterdir()),
            "failures": len(crashes) or (0 if result.returncode == 0 else 1),
        }
    )
    assert result.returncode == 0 and not crashes, (
        f"the fuzzer broke the decoders' contract (exit {result.returncode}); inputs in "
        f"{artifacts}: {crashes}\n{output[-4000:]}"
    )
    assert runs_found is not None and int(runs_found.group(1)) > 1000, output[-2000:]
