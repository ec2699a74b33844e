"""The benchmark's records, handed from stage to stage (:mod:`yolo_ema.bench.pipeline`):

data (a prepared folder) -> train (:class:`TrainedRun` per model x seed, :func:`yolo_ema.bench.runner.train_run`)
-> evaluate (:class:`ScoredRun`: metrics and bootstrap scores, :func:`yolo_ema.bench.jobs.train_and_score`)
-> statistics (:class:`Statistics`: one :class:`Comparison` per arm) -> cost (per model, :mod:`yolo_ema.bench.cost`)
-> pictures (:class:`Picture`) -> report (:class:`Results`, written by :mod:`yolo_ema.bench.report` from
:meth:`Results.document`, the content of ``report.json``).

Each record is frozen: a stage returns new records and never takes keys out of another stage's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from yolo_ema.bench.bootstrap import Scores


@dataclass(frozen=True)
class TrainedRun:
    """One model x seed with weights. ``status``: how this invocation got them (trained, resumed, recovered after a
    kill, skipped because done.json says it is finished, or given with ``--weights``); ``val``: Ultralytics' own
    validation ({mAP50-95, mAP50}, None when not run); ``settings``/``worker``: what trained it (None: given)."""

    run: str  # <label>-seed<k>
    role: str  # pretrain, baseline or arm
    label: str
    cfg: str
    seed: int
    weights: str
    status: str
    val: dict = field(default_factory=lambda: {"mAP50-95": None, "mAP50": None})
    settings: dict | None = None
    worker: str | None = None

    def marker(self) -> dict:
        """The run's ``done.json`` content (what a rerun needs to reuse it: everything but this invocation's status)."""
        d = asdict(self)
        d.pop("status")
        return d

    @classmethod
    def from_marker(cls, marker: dict, status: str) -> TrainedRun:
        """A finished run read back from its ``done.json``."""
        return cls(**{k: marker.get(k) for k in cls.__dataclass_fields__ if k != "status"}, status=status)


@dataclass(frozen=True)
class ScoredRun:
    """A run after evaluation: ``metrics`` is :func:`yolo_ema.eval.evaluate`'s result (its ``detections`` names the
    file in the run folder; absent for given weights); ``scores`` its metrics on every bootstrap draw of the images
    (the same draws for every run of a benchmark)."""

    trained: TrainedRun
    metrics: dict
    scores: Scores

    def document(self) -> dict:
        """The run's entry in ``report.json``: the trained run's fields plus ``eval`` (the bootstrap scores stay in the
        run folder's cache)."""
        return {**asdict(self.trained), "eval": self.metrics}


@dataclass(frozen=True)
class Comparison:
    """One arm against the baseline, paired by seed: the seeds paired, each seed's image-only intervals, and the
    pooled interval over seeds and images with its verdict (:func:`yolo_ema.bench.bootstrap.paired`), per metric."""

    seeds: list
    per_seed: list  # [{metric: interval}] per seed
    pooled: dict  # {metric: interval with verdict, detectable effect, seeds for 1 point}


@dataclass(frozen=True)
class Statistics:
    """The statistics stage: the interval method in words and one :class:`Comparison` per arm label."""

    method: str
    resamples: int
    arms: dict  # {arm label: Comparison}


@dataclass(frozen=True)
class Picture:
    """attention.png: the file name, the arm whose EMA maps it shows, the validation images used."""

    attention: str
    arm: str
    images: list


@dataclass(frozen=True)
class Description:
    """What was compared, on what data, how trained, where and how long (the report's facts)."""

    data: str
    data_dir: str
    split: str
    protocol: str
    baseline: str
    arms: list
    configs: dict  # {label: config path or weights}
    seeds: list
    training: str
    pretrain_epochs: int
    train_images: int | None
    machine: str
    wall_seconds: float
    wall_time: str
    command: str | None


@dataclass(frozen=True)
class Results:
    """Everything the report shows: the description, the scored runs, the statistics, each model's cost
    ({label: :func:`yolo_ema.bench.cost.measure` entry}), the picture (None: no EMA arm or no images), notes."""

    benchmark: Description
    runs: list  # [ScoredRun], in plan order
    statistics: Statistics
    cost: dict
    picture: Picture | None
    notes: list

    def document(self) -> dict:
        """The JSON document the report is written from (``report.json`` before the report adds its summaries)."""
        return {
            "benchmark": asdict(self.benchmark),
            "runs": [r.document() for r in self.runs],
            "bootstrap": asdict(self.statistics),
            "cost": self.cost,
            "pictures": asdict(self.picture) if self.picture else {},
            "notes": list(self.notes),
        }
