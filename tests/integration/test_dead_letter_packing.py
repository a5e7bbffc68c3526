"""The dead letters cross the window operator packed into one column: nothing changes."""

from __future__ import annotations

from typing import Any

from stream.sequence import DEAD_LETTER_COLUMNS, pack_dead_letter, unpack_dead_letter

ROWS = [
    (b"k0", b"{", "payload", "json", "not a JSON object", "kafka:t/0@0"),
    (None, b"\xff\x00\xfe raw bytes", "payload", "utf8", "not UTF-8", "kafka:t/1@7"),
    (b"", b"", "v", "version", 'quotes " and \\ and a\nnewline, \u00e9\u4e2d', "kafka:t/0@9"),
    (b"\x80key", None, None, "required", None, None),
]


def test_pack_and_unpack_give_back_every_dead_letter_column_unchanged(spark: Any) -> None:
    from pyspark.sql import functions as F

    names = [name for name, _ in DEAD_LETTER_COLUMNS]
    schema = ", ".join(f"{name} {kind}" for name, kind in DEAD_LETTER_COLUMNS)
    df = spark.createDataFrame(ROWS, schema)
    packed = df.select(pack_dead_letter(*[F.col(n) for n in names]).alias("p"))
    assert all(isinstance(r["p"], str) for r in packed.collect())
    back = packed.select(*unpack_dead_letter(F.col("p")))
    assert back.schema == df.schema
    got = [tuple(bytes(v) if isinstance(v, bytearray) else v for v in r) for r in back.collect()]
    assert got == ROWS


def test_a_null_packed_dead_letter_unpacks_to_nulls(spark: Any) -> None:
    from pyspark.sql import functions as F

    df = spark.range(2).select(F.lit(None).cast("string").alias("p"))
    rows = df.select(*unpack_dead_letter(F.col("p"))).collect()
    assert [tuple(r) for r in rows] == [(None,) * len(DEAD_LETTER_COLUMNS)] * 2
