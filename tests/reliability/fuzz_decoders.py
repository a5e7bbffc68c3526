"""Coverage-guided fuzzing of the reading decoders with atheris (libFuzzer).

The target is :func:`tests.reliability.decoder_contract.check`: for any bytes, ``decode``
returns a reading or raises ``DecodeError``, validation never raises, and valid readings
re-encode stably. ``ingest.codec``, ``ingest.schema`` and ``ingest.validation`` are
instrumented for coverage.

Run it as a program; libFuzzer's flags apply (``-max_total_time=SECONDS``,
``-artifact_prefix=DIR/``, corpus folders)::

    .venv/bin/python tests/reliability/fuzz_decoders.py -max_total_time=60 /tmp/corpus

A broken contract ends the run with a non-zero exit and writes the input to
``<artifact_prefix>crash-<sha1>``; ``tests/reliability/test_fuzz_decoders.py`` runs it with a
time budget and keeps the inputs it found as regression cases.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["ingest"]):
    from tests.reliability.decoder_contract import check


def main(argv: list[str]) -> None:
    atheris.Setup(argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
