"""Training runs for the benchmark, resumable: one run = one model config x one seed.

Each run trains in ``OUT/runs/<label>-seed<k>/`` (Ultralytics' run folder: ``weights/best.pt``, ``weights/last.pt``)
through the Ultralytics Python API, in-process, with the same settings for baseline and EMA and
``deterministic=True``. A finished run gets ``done.json`` (written atomically, last) recording its weights, settings
and Ultralytics' final validation metrics. On a re-run:

- ``done.json`` present and settings equal: the run is skipped (a different setting is an error naming the run);
- no marker but a resumable ``weights/last.pt`` (epoch and optimizer state): Ultralytics ``resume``;
- no marker and a finished ``best.pt`` (killed after training, before the marker): validated and marked done;
- anything else: the folder is cleared and the run starts afresh.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from yolo_ema.bench.evaluation import read_json
from yolo_ema.bench.records import TrainedRun
from yolo_ema.data.fsio import write_json

DONE = "done.json"


class BenchmarkError(RuntimeError):
    """The benchmark cannot go on; the message names the culprit (run, file, setting)."""


@dataclass(frozen=True)
class Settings:
    """Training settings shared by baseline and EMA runs (the seed is per run)."""

    epochs: int
    imgsz: int
    batch: int
    device: str = "cpu"
    workers: int = 0
    pretrained: str | None = None
    val: bool = True  # validate every epoch (False: only after the last, so best.pt == last.pt)
    extra: dict = field(default_factory=dict)  # further Ultralytics train arguments

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Run:
    """One training run: model ``label`` built from ``cfg`` with ``seed``; ``role``: pretrain, baseline or arm."""

    role: str
    label: str
    cfg: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.label}-seed{self.seed}"


def local_worker() -> str:
    """This process as a worker name: ``host/pid``."""
    return f"{socket.gethostname()}/{os.getpid()}"


def run_dir(out: Path, run: Run) -> Path:
    return Path(out) / "runs" / run.name


def _val_dict(metrics) -> dict:
    """Ultralytics DetMetrics (or a dict from a marker/mock) -> {mAP50-95, mAP50}."""
    if metrics is None:
        return {"mAP50-95": None, "mAP50": None}
    if isinstance(metrics, dict):
        return {"mAP50-95": metrics.get("mAP50-95"), "mAP50": metrics.get("mAP50")}
    return {"mAP50-95": float(metrics.box.map), "mAP50": float(metrics.box.map50)}


def ultralytics_val(weights: str | os.PathLike, data_yaml: str | os.PathLike, settings: Settings) -> dict:
    """Ultralytics' own validation of ``weights`` on the data YAML's val split -> {mAP50-95, mAP50}."""
    from ultralytics import YOLO

    m = YOLO(str(weights))
    metrics = m.val(
        data=str(data_yaml),
        imgsz=settings.imgsz,
        batch=settings.batch,
        device=settings.device,
        workers=settings.workers,
        plots=False,
        verbose=False,
    )
    return _val_dict(metrics)


def ultralytics_train(run: Run, data_yaml: Path, settings: Settings, folder: Path, resume_from: Path | None) -> dict:
    """Train (or resume) one run with Ultralytics in this process; return {weights, val}."""
    from ultralytics import YOLO

    if resume_from is not None:
        model = YOLO(str(resume_from))
        metrics = model.train(resume=True, device=settings.device, workers=settings.workers)
    else:
        kwargs = dict(
            data=str(data_yaml),
            epochs=settings.epochs,
            imgsz=settings.imgsz,
            batch=settings.batch,
            device=settings.device,
            workers=settings.workers,
            seed=run.seed,
            deterministic=True,
            project=str(folder.parent),
            name=folder.name,
            exist_ok=True,
            val=settings.val,
            plots=False,
        )
        if settings.pretrained:
            kwargs["pretrained"] = str(settings.pretrained)
        kwargs.update(settings.extra)
        model = YOLO(run.cfg)
        metrics = model.train(**kwargs)
    weights = folder / "weights" / "best.pt"
    if not weights.is_file():
        weights = folder / "weights" / "last.pt"
    if not weights.is_file():
        raise BenchmarkError(f"run {run.name}: training finished but no weights in {folder / 'weights'}")
    return {"weights": str(weights), "val": _val_dict(metrics)}


def resumable(last: Path) -> bool:
    """True if ``last`` is an Ultralytics checkpoint of an unfinished training (epoch >= 0, optimizer state)."""
    if not last.is_file():
        return False
    try:
        from ultralytics.nn.tasks import load_checkpoint

        _, ckpt = load_checkpoint(str(last))
    except Exception:  # a checkpoint cut short by a kill: not resumable, restart
        return False
    return bool(ckpt) and ckpt.get("epoch", -1) >= 0 and ckpt.get("optimizer") is not None


def _check_same(run: Run, marker: dict, settings: Settings, path: Path) -> None:
    want, got = settings.as_dict(), marker.get("settings", {})
    diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k) and k not in ("device", "workers"))
    if diff or marker.get("cfg") != run.cfg:
        what = ", ".join(f"{k}: {got.get(k)!r} -> {want.get(k)!r}" for k in diff) or f"cfg {marker.get('cfg')!r}"
        raise BenchmarkError(
            f"run {run.name} in {path.parent} was finished with other settings ({what}); "
            f"use another --out, or delete {path.parent} to retrain it"
        )


def train_run(
    run: Run,
    data_yaml: Path,
    settings: Settings,
    out: Path,
    train_fn: Callable | None = None,
    val_fn: Callable | None = None,
    log: Callable[[str], None] = print,
    worker: str | None = None,
) -> TrainedRun:
    """Make sure ``run`` is trained; return it as a :class:`TrainedRun` (its marker is ``done.json``).

    ``worker`` (default :func:`local_worker`) names who trains it; it is kept in ``done.json``, so a run reused later
    still names the worker that trained it."""
    folder = run_dir(out, run).resolve()  # absolute: Ultralytics puts a relative project under its runs_dir
    marker = folder / DONE
    done = read_json(marker)
    if done is not None:
        _check_same(run, done, settings, marker)
        if Path(done["weights"]).is_file():
            log(f"{run.name}: already trained ({done['weights']}), skipped")
            return TrainedRun.from_marker(done, "skipped")
        log(f"{run.name}: marker found but weights {done['weights']} missing; training again")
    last, best = folder / "weights" / "last.pt", folder / "weights" / "best.pt"
    train_fn = train_fn or ultralytics_train
    if resumable(last):
        log(f"{run.name}: resuming the interrupted training from {last}")
        result, status = train_fn(run, data_yaml, settings, folder, last), "resumed"
    elif best.is_file() and last.is_file():
        log(f"{run.name}: training had finished before the marker was written; validating {best}")
        result = {"weights": str(best), "val": (val_fn or ultralytics_val)(best, data_yaml, settings)}
        status = "recovered"
    else:
        if folder.exists():
            log(f"{run.name}: clearing the unfinished run folder {folder}")
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        result, status = train_fn(run, data_yaml, settings, folder, None), "trained"
    trained = TrainedRun(run.name, run.role, run.label, run.cfg, run.seed, str(result["weights"]), status,
                         _val_dict(result.get("val")), settings.as_dict(), worker or local_worker())  # fmt: skip
    write_json(marker, trained.marker(), indent=1, default=str)
    return trained
