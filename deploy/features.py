"""``prognos features``: window features of a large recording, computed by Spark.

The recording (a local file or any Hadoop-compatible URI such as ``hdfs://``) is read by
Spark, grouped by device, and each device's readings are cut into windows and featurised
by :func:`models.data.window_features`, the code ``prognos train`` runs, whose per-window
numbers the stream job's operator reproduces (``models.features``). The table is written
as Parquet (one row per window: ``device_id``, ``window_index``, ``t_first``, ``t_last``,
then one column per feature) with ``_prognos.json`` beside it: the feature spec, the
source, and each device's failure time where the recording says it (a C-MAPSS training
file runs every engine to failure). ``prognos train --features TABLE`` trains from it, so
months of fleet history need not fit in one machine's memory, only their windows.

Run it locally (``PROGNOS_SPARK_MASTER``, ``local[2]``) or on a cluster with
``prognos submit features RECORDING --out hdfs://...``.

Formats: C-MAPSS text files (``*_FD00N.txt``), and CSV or Parquet tables with a
``device_id`` column, an ``event_time`` column (Unix seconds, or ISO 8601 in CSV) and the
spec's sensors as columns.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from models.data import WindowTable
    from models.features import FeatureSpec

logger = logging.getLogger(__name__)

__all__ = ["METADATA_FILE", "compute", "read_table", "table_frame", "windows_of"]

METADATA_FILE = "_prognos.json"
_CMAPSS = re.compile(r"(train|test)_(FD00\d)\.txt$")
_KEYS = ("device_id", "window_index", "t_first", "t_last")


def _cmapss(spark: SparkSession, source: str, cycle_seconds: float) -> tuple[DataFrame, str]:
    from pyspark.sql import functions as F

    from models.data import _CMAPSS_COLUMNS, DEFAULT_BASE_TIME

    match = _CMAPSS.search(source)
    assert match is not None
    subset = match.group(2)
    parts = F.split(F.trim(F.col("value")), r"\s+")
    columns = [parts.getItem(i).cast("double").alias(c) for i, c in enumerate(_CMAPSS_COLUMNS)]
    frame = spark.read.text(source).where(F.length(F.trim("value")) > 0).select(*columns)
    unit = F.lpad(F.col("unit").cast("int").cast("string"), 3, "0")
    frame = frame.select(
        F.concat(F.lit(f"{subset}-"), unit).alias("device_id"),
        (F.lit(DEFAULT_BASE_TIME) + F.col("cycle") * F.lit(cycle_seconds)).alias("event_time"),
        *[F.col(c) for c in _CMAPSS_COLUMNS if c != "unit"],
    )
    return frame, match.group(1)


def _table(spark: SparkSession, source: str) -> DataFrame:
    from pyspark.sql import functions as F

    if source.endswith(".parquet") or "." not in source.rsplit("/", 1)[-1]:
        frame = spark.read.parquet(source)
    elif source.endswith(".csv"):
        frame = spark.read.option("header", "true").option("inferSchema", "true").csv(source)
    else:
        raise DataError(
            f"{source}: prognos features reads C-MAPSS text files (*_FD00N.txt), CSV (*.csv) "
            "and Parquet (*.parquet); convert the recording to one of them"
        )
    missing = [c for c in ("device_id", "event_time") if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: no column {missing}; prognos features needs device_id, event_time and "
            "the sensors as columns (rename them, or replay the file with its mapping)"
        )
    time_type = dict(frame.dtypes)["event_time"]
    if time_type in ("string", "timestamp", "timestamp_ntz"):
        seconds = F.unix_micros(F.to_timestamp("event_time")) / F.lit(1e6)
    else:
        seconds = F.col("event_time").cast("double")
    return frame.withColumn("device_id", F.col("device_id").cast("string")).withColumn(
        "event_time", seconds
    )


def _unreadable(where: str, exc: BaseException, what: str) -> DataError:
    lines = str(getattr(exc, "desc", None) or exc).strip().splitlines()
    cause = lines[0][:300] if lines else type(exc).__name__
    return DataError(
        f"cannot {what} {where}: {cause}. Check the path, and that its file system answers "
        "(for the local cluster: `prognos cluster status`)"
    )


def compute(
    spark: SparkSession,
    source: str,
    out: str,
    spec: FeatureSpec,
    *,
    cycle_seconds: float = 600.0,
) -> dict[str, Any]:
    """Featurise ``source`` into the Parquet table ``out`` (replaced); returns its metadata.

    Raises:
        DataError: the format is not read here, a column or sensor is missing, no readings,
            the recording cannot be read or the table not written (Spark's reason named).
    """
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    try:
        return _compute(spark, source, out, spec, cycle_seconds=cycle_seconds)
    except (PySparkException, Py4JJavaError) as exc:
        raise _unreadable(f"{source} (into {out})", exc, "featurise") from None


def _compute(
    spark: SparkSession,
    source: str,
    out: str,
    spec: FeatureSpec,
    *,
    cycle_seconds: float = 600.0,
) -> dict[str, Any]:
    """The work of :func:`compute` (Spark's own errors raised as they are)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    split = None
    if _CMAPSS.search(source):
        frame, split = _cmapss(spark, source, cycle_seconds)
    else:
        frame = _table(spark, source)
    missing = [s for s in spec.sensors if s not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: sensor(s) {missing} of spec {spec.name!r} are not columns (have "
            f"{', '.join(c for c in frame.columns if c not in ('device_id', 'event_time'))})"
        )
    frame = frame.select(
        "device_id", "event_time", *[F.col(s).cast("double").alias(s) for s in spec.sensors]
    )
    schema = StructType(
        [
            StructField("device_id", StringType(), False),
            StructField("window_index", LongType(), False),
            StructField("t_first", DoubleType(), False),
            StructField("t_last", DoubleType(), False),
            *[StructField(name, DoubleType(), True) for name in spec.feature_names],
        ]
    )

    def featurise(readings: pd.DataFrame) -> pd.DataFrame:
        from models.data import Recording, window_features

        ordered = readings.sort_values("event_time", kind="stable").reset_index(drop=True)
        recording = Recording("features", ordered, {}, "")
        return table_frame(window_features(recording, spec), spec)

    windows = frame.groupBy("device_id").applyInPandas(featurise, schema)
    windows.write.mode("overwrite").parquet(out)
    summary = frame.groupBy("device_id").agg(F.max("event_time").alias("last")).collect()
    if not summary:
        raise DataError(f"{source}: no readings")
    # A C-MAPSS training file runs every engine to failure at its last cycle.
    failures = {r["device_id"]: float(r["last"]) for r in summary} if split == "train" else {}
    count = spark.read.parquet(out).count()
    metadata = {
        "source": source,
        "spec": spec.to_dict(),
        "devices": len(summary),
        "windows": count,
        "failure_times": failures,
        "cycle_seconds": cycle_seconds if split else None,
    }
    _write_metadata(spark, out, metadata)
    return metadata


def _write_metadata(spark: SparkSession, out: str, metadata: dict[str, Any]) -> None:
    from stream.storage import HadoopFiles, is_uri

    text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    if is_uri(out):
        HadoopFiles(spark).write_text(f"{out.rstrip('/')}/{METADATA_FILE}", text)
    else:
        (Path(out) / METADATA_FILE).write_text(text)


def table_frame(windows: WindowTable, spec: FeatureSpec) -> pd.DataFrame:
    """A :class:`models.data.WindowTable` as the table's rows."""
    import pandas as pd

    frame = pd.DataFrame(windows.features, columns=list(spec.feature_names))
    frame.insert(0, "device_id", windows.device.astype(str))
    frame.insert(1, "window_index", windows.index.astype("int64"))
    frame.insert(2, "t_first", windows.t_first)
    frame.insert(3, "t_last", windows.t_last)
    return frame


def windows_of(frame: pd.DataFrame, spec: FeatureSpec) -> WindowTable:
    """The table's rows back as a :class:`models.data.WindowTable`, by device and window."""
    import numpy as np

    from models.data import WindowTable

    missing = [c for c in (*_KEYS, *spec.feature_names) if c not in frame.columns]
    if missing:
        raise DataError(f"the features table lacks columns {missing[:5]}: rerun prognos features")
    ordered = frame.sort_values(["device_id", "window_index"], kind="stable")
    return WindowTable(
        device=ordered["device_id"].astype(str).to_numpy(),
        index=ordered["window_index"].to_numpy(np.int64),
        t_first=ordered["t_first"].to_numpy(np.float64),
        t_last=ordered["t_last"].to_numpy(np.float64),
        features=ordered[list(spec.feature_names)].to_numpy(np.float64),
    )


def read_table(table: str) -> tuple[WindowTable, dict[str, Any]]:
    """A features table (a local folder, or a URI read through Spark) and its metadata.

    Raises:
        DataError: no table or metadata there.
    """
    from models.features import FeatureSpec
    from stream.storage import HadoopFiles, is_uri

    if is_uri(table):
        from py4j.protocol import Py4JJavaError
        from pyspark.errors import PySparkException

        from deploy.spark import spark_session

        spark = spark_session()
        try:
            text = HadoopFiles(spark).read_text(f"{table.rstrip('/')}/{METADATA_FILE}")
            frame = spark.read.parquet(table).toPandas() if text is not None else None
        except (PySparkException, Py4JJavaError) as exc:
            raise _unreadable(table, exc, "read") from None
    else:
        meta_path = Path(table) / METADATA_FILE
        text = meta_path.read_text() if meta_path.is_file() else None
        if text is not None:
            import pandas as pd

            frame = pd.read_parquet(table)
    if text is None or frame is None:
        raise DataError(
            f"{table} is not a features table (no {METADATA_FILE}): write one with "
            "`prognos features RECORDING --out TABLE`"
        )
    metadata = json.loads(text)
    spec = FeatureSpec.from_dict(metadata["spec"])
    return windows_of(frame, spec), metadata
