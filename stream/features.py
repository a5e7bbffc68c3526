"""Window features in Spark SQL, from the model's :class:`models.features.FeatureSpec`.

The statistics are defined once, in :mod:`models.features` (whose numpy implementation
trains the model); this module maps each to the Spark aggregate that reproduces it, and
a test checks the two agree on real data. Everything runs in the JVM: Python sees one row
per device and closed window, not one per reading.

================  ========================================================================
statistic         Spark aggregate over the window's non-missing values ``v``
================  ========================================================================
``mean``          ``avg(v)``
``std``           ``stddev_pop(v)``
``min``/``max``   ``min(v)`` / ``max(v)``
``last``          ``max_by(v, struct(t, v))`` over rows where ``v`` is present
``slope``         ``coalesce(regr_slope(v, t), 0)`` when ``count(v) >= 1``, with ``t`` the
                  event time in seconds
================  ========================================================================

A statistic over no values is null, sent to the model as NaN (missing); the scorer's
normalisation turns it into the training mean.

Where the model was trained with per-regime normalisation (:class:`RegimeNorm`), each
reading is first standardised for its regime (nearest centroid of its settings), in SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from models.features import FeatureSpec, RegimeNorm


def _value(sensor: str) -> Column:
    """The sensor's value, or null when missing or not finite."""
    from pyspark.sql import functions as F

    v = F.col("sensors")[sensor]
    bad = F.isnan(v) | (F.abs(v) == F.lit(float("inf")))
    return F.when(v.isNotNull() & ~bad, v)


def standardise_regimes(readings: DataFrame, spec: FeatureSpec, regimes: RegimeNorm) -> DataFrame:
    """Standardise each sensor per operating regime, as :func:`models.features.normalise_readings`."""
    from pyspark.sql import functions as F

    settings = F.col("settings")
    distances = [
        sum(
            (
                (settings[name] - F.lit(float(c))) ** 2
                for name, c in zip(regimes.settings, centroid, strict=True)
            ),
            F.lit(0.0),
        )
        for centroid in regimes.centroids
    ]
    d = F.array(*distances)
    regime = F.array_position(d, F.array_min(d)) - 1  # 0-based, first on ties (like argmin)
    standardised = {}
    for i, sensor in enumerate(spec.sensors):
        means = F.array(*[F.lit(float(m[i])) for m in regimes.mean])
        scales = F.array(*[F.lit(float(s[i])) for s in regimes.scale])
        v = F.col("sensors")[sensor]
        standardised[sensor] = (v - F.element_at(means, regime + 1)) / F.element_at(
            scales, regime + 1
        )
    pairs = [x for sensor, expr in standardised.items() for x in (F.lit(sensor), expr)]
    return readings.withColumn("sensors", F.map_concat(F.col("sensors"), F.create_map(*pairs)))


def aggregations(spec: FeatureSpec) -> list[Column]:
    """One aggregate column per feature, in model-input order, named like the feature."""
    from pyspark.sql import functions as F

    t = F.unix_micros(F.col("event_time")) / F.lit(1_000_000.0)
    columns = []
    for sensor, stat in spec.features:
        v = _value(sensor)
        if stat == "mean":
            agg = F.avg(v)
        elif stat == "std":
            agg = F.stddev_pop(v)
        elif stat == "min":
            agg = F.min(v)
        elif stat == "max":
            agg = F.max(v)
        elif stat == "last":
            agg = F.max_by(v, F.when(v.isNotNull(), F.struct(t, v)))
        elif stat == "slope":
            agg = F.when(
                F.count(v) >= 1, F.coalesce(F.regr_slope(v, F.when(v.isNotNull(), t)), F.lit(0.0))
            )
        else:  # pragma: no cover - FeatureSpec refuses unknown statistics
            raise ValueError(f"unknown statistic {stat!r}")
        columns.append(agg.cast("double").alias(f"{sensor}__{stat}"))
    return columns


def window_features(
    readings: DataFrame, spec: FeatureSpec, slide_seconds: float | None = None
) -> DataFrame:
    """Per device and event-time window: the feature vector, in model-input order.

    Args:
        readings: valid readings with ``device_id``, ``event_time``, ``sensors`` (and
            ``settings`` when the spec uses regimes), with a watermark already set.
        spec: the model's feature spec; ``spec.window_seconds`` is the window length.
        slide_seconds: slide for sliding windows; None for tumbling windows (the default,
            and what the model was trained on).

    Returns:
        ``device_id``, ``window_start``, ``window_end``, ``n_readings`` and ``features``
        (``array<double>``, NaN where a statistic had no values).
    """
    from pyspark.sql import functions as F

    length = f"{int(spec.window_seconds * 1000)} milliseconds"
    slide = f"{int((slide_seconds or spec.window_seconds) * 1000)} milliseconds"
    offset_ms = round(spec.origin_seconds * 1000) % int(spec.window_seconds * 1000)
    window = F.window("event_time", length, slide, f"{offset_ms} milliseconds")
    grouped = readings.groupBy(window.alias("window"), F.col("device_id")).agg(
        F.count(F.lit(1)).alias("n_readings"), *aggregations(spec)
    )
    names = list(spec.feature_names)
    nan = F.lit(float("nan"))
    return grouped.select(
        "device_id",
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        "n_readings",
        F.array(*[F.coalesce(F.col(n), nan) for n in names]).alias("features"),
    )
