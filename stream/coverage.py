"""Coverage guard: does the fleet's data carry the sensors the model reads?

Each scored window carries its coverage, the share of the model's sensors present in it
(:func:`models.features.sensor_coverage`); a missing sensor's features are set to the
training mean, so a window without the model's sensors gets a risk that means nothing.
:class:`CoverageGuard` looks at every batch's windows before they reach Redis:

* the first batch with scored windows in which no window has any of the model's sensors
  stops the job (:class:`~stream.errors.CoverageError`), naming the model's sensors and the
  sensors the readings carry (sampled from the topic), before anything is written;
* windows under ``min_coverage`` are counted and warned about, with the model's sensors
  the batch's windows most often lacked; the mean coverage and the count go to the job's
  metrics, and every alert event carries its window's coverage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stream.errors import CoverageError

if TYPE_CHECKING:
    from ingest.config import KafkaConfig
    from stream.alerts import ScoredWindow

logger = logging.getLogger(__name__)

__all__ = ["BatchCoverage", "CoverageGuard", "readings_sensors"]

#: Readings sampled from the topic to name the sensors they carry.
_SAMPLE = 1_000


def readings_sensors(kafka: KafkaConfig, limit: int = _SAMPLE, timeout_s: float = 10.0) -> set[str]:
    """The sensor names of the first ``limit`` decodable readings of the topic."""
    from ingest.consumer import iter_records

    names: set[str] = set()
    seen = 0
    records = iter_records(kafka, kafka.topic, timeout_s=timeout_s)
    try:
        for record in records:
            if record.reading is not None:
                names.update(record.reading.sensors)
                seen += 1
                if seen >= limit:
                    break
    finally:
        records.close()  # type: ignore[attr-defined]
    return names


@dataclass(frozen=True)
class BatchCoverage:
    """One batch's windows: their mean coverage and how many fall under the minimum."""

    mean: float
    low: int


class CoverageGuard:
    """Checks each batch's scored windows against the model's sensors.

    Args:
        model_sensors: the sensors the model reads.
        min_coverage: windows under this share are counted and warned about.
        kafka: the readings topic, sampled to name its sensors when none is shared.
    """

    def __init__(
        self, model_sensors: Sequence[str], min_coverage: float, kafka: KafkaConfig
    ) -> None:
        self.model_sensors = tuple(model_sensors)
        self.min_coverage = min_coverage
        self.kafka = kafka
        self._checked = False

    def check(self, windows: Sequence[ScoredWindow], batch_id: int) -> BatchCoverage:
        """Check one batch's windows; returns their coverage figures.

        Raises:
            CoverageError: the first batch with windows shares no sensor with the model.
        """
        if not windows:
            return BatchCoverage(1.0, 0)
        shares = [w.coverage for w in windows]
        if not self._checked and max(shares) == 0.0:
            raise CoverageError(self._no_overlap_message())
        self._checked = True
        low = sum(1 for s in shares if s < self.min_coverage)
        mean = sum(shares) / len(shares)
        if low:
            logger.warning(
                "batch %d: %d of %d windows had under %.0f%% of the model's sensors (mean "
                "coverage %.2f); their risk treats a missing sensor as normal. Check the "
                "readings' sensor names against the model's: %s",
                batch_id,
                low,
                len(shares),
                self.min_coverage * 100,
                mean,
                ", ".join(self.model_sensors),
            )
        return BatchCoverage(mean, low)

    def _no_overlap_message(self) -> str:
        try:
            seen = sorted(readings_sensors(self.kafka))
            readings = ", ".join(seen) if seen else "(none decodable)"
        except Exception as exc:  # the message matters more than the sample
            readings = f"(could not sample the topic: {exc})"
        return (
            f"the readings of topic {self.kafka.topic!r} share no sensor with the model: "
            f"the model reads {', '.join(self.model_sensors)}; the readings carry {readings}. "
            "Every risk would be the training mean's. Train a model on this fleet "
            "(prognos train --data RECORDING ...) and pass it with --model, or rename the "
            "sensors to the model's names (a replay --mapping)"
        )
