"""What the decoders promise for any bytes, checked by the fuzzer and by hypothesis.

:func:`check` is the fuzz target's body. For arbitrary message bytes:

* :func:`ingest.codec.decode` returns a :class:`~ingest.schema.Reading` or raises
  :class:`~ingest.errors.DecodeError` naming a field and a rule; never another exception
  (a consumer that reads a poison message must be able to dead-letter it, not crash).
* :func:`ingest.validation.validate` of a decoded reading returns a list of violations and
  never raises.
* The dead-letter path works for every decoded reading: ``encode(reading, allow_nan=True)``
  and the message key (:func:`ingest.codec.key_of`) never raise.
* A reading without violations encodes strictly, fits the size limit, and re-encoding is
  stable: ``encode(decode(encode(r))) == encode(r)`` (event times are written to the
  millisecond, so ``decode(encode(r))`` may differ from ``r`` only in sub-millisecond time).
"""

from __future__ import annotations

from pathlib import Path

from ingest.codec import decode, encode, key_of
from ingest.errors import DecodeError
from ingest.validation import check_size, validate


class ContractBroken(AssertionError):
    """A decoder broke its contract; the message says which part and for what input."""


def check(data: bytes) -> None:
    """Check the decoders' contract on ``data``; raise :class:`ContractBroken` if broken."""
    try:
        reading = decode(data)
    except DecodeError as exc:
        if not (exc.field and exc.rule):
            raise ContractBroken(f"DecodeError without field or rule for {data[:80]!r}") from exc
        return
    except Exception as exc:
        raise ContractBroken(
            f"decode raised {type(exc).__name__} (not DecodeError) for {data[:80]!r}: {exc}"
        ) from exc
    try:
        violations = validate(reading)
    except Exception as exc:
        raise ContractBroken(f"validate raised {type(exc).__name__} for {data[:80]!r}") from exc
    try:
        encode(reading, allow_nan=True)
        key_of(reading)
    except Exception as exc:
        raise ContractBroken(
            f"the dead-letter path cannot write a decoded reading ({type(exc).__name__}: {exc}) "
            f"for {data[:80]!r}"
        ) from exc
    if violations:
        return
    try:
        value = encode(reading)
    except Exception as exc:
        raise ContractBroken(
            f"a valid reading does not encode ({type(exc).__name__}: {exc}) for {data[:80]!r}"
        ) from exc
    if check_size(value) is not None and check_size(data) is None:
        raise ContractBroken(f"re-encoding a valid reading made it too large: {data[:80]!r}")
    again = encode(decode(value))
    if again != value:
        raise ContractBroken(f"re-encoding is not stable: {value[:80]!r} -> {again[:80]!r}")


def seed_inputs() -> list[bytes]:
    """Inputs the fuzzer starts from: valid readings of each kind and typical breakages.

    json is a C module, so coverage cannot guide the fuzzer into valid JSON by itself;
    starting from real messages lets its mutations reach every rule of the decoder.
    """
    from datetime import UTC, datetime

    from ingest.schema import Reading

    t = datetime(2026, 1, 1, tzinfo=UTC)
    valid = [
        Reading(
            "pump-0001",
            t,
            12,
            {"vibration": 2.31, "pressure": None},
            {"load": 0.8},
            {"type": "pump"},
        ),
        Reading(
            "FD001-001",
            t,
            1,
            {f"s{i}": 600.0 + i for i in range(1, 22)},
            {"setting1": 0.0, "setting2": 0.0, "setting3": 100.0},
            {"source": "cmapss", "subset": "FD001"},
        ),
        Reading("e1", t, 0, {"new_sensor": 12.5}),
    ]
    seeds = [encode(r) for r in valid]
    stamp = b'"t":"2026-01-01T00:00:00.000Z"'
    seeds += [
        b'{"v":1,"d":"pump-0001",' + stamp + b',"s":12,"x":{"vibration":NaN}}',
        b'{"v":1,"d":"pump-0001",' + stamp + b',"s":"one","x":{"vibration":1.0}}',
        b'{"v":1,"d":"e1",' + stamp + b',"s":-4,"x":{"s2":600.0},"zz":1}',
        b'{"v":2,"d":"e1",' + stamp + b',"s":1,"x":{"s3":99999.0},"m":{"k":1}}',
        b'{"v":1,"d":"\\u00e9",' + stamp + b',"s":1,"x":{"s2":1e400},"o":{"load":null}}',
        b"[1, 2, 3]",
        b"not json",
    ]
    return seeds


DICTIONARY = [
    '"v"',
    '"d"',
    '"t"',
    '"s"',
    '"x"',
    '"o"',
    '"m"',
    "NaN",
    "Infinity",
    "-Infinity",
    "null",
    "true",
    "false",
    "1e400",
    "-0.0",
    "\\u0000",
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "2026-01-01T00:00:00.000Z",
    "+00:00",
    "Z",
    "[[[[",
    "{{{{",
    "]]]]",
    "}}}}",
    '"s2"',
    '"load"',
    '"setting1"',
    '"vibration"',
]
"""libFuzzer dictionary entries (tokens of the wire format), written with ``-dict=``."""


def write_fuzz_inputs(corpus: Path, dictionary: Path) -> None:
    """Write :func:`seed_inputs` into ``corpus`` and :data:`DICTIONARY` to ``dictionary``."""
    import hashlib

    corpus.mkdir(parents=True, exist_ok=True)
    for data in seed_inputs():
        (corpus / f"seed-{hashlib.sha1(data).hexdigest()[:12]}").write_bytes(data)
    lines = []
    for token in DICTIONARY:
        escaped = token.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'"{escaped}"')
    dictionary.write_text("\n".join(lines) + "\n")
