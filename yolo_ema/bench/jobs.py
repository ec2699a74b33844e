"""Train-and-evaluate jobs (one job = one model x seed), run one after another, side by side in local processes, or
on a Dask cluster (``--scheduler``, :mod:`yolo_ema.bench.cluster`, which sends these same jobs).

Locally, jobs run in *slots*: one process each, reused from job to job. On a CPU Ultralytics trains with
``cores - 1`` torch threads (at most 8), so a 2-core machine trains on one core and two slots use both. With several
GPUs (``--device 0,1,2,3`` or ``all``) each slot is pinned to one GPU (``CUDA_VISIBLE_DEVICES`` set in its process
before CUDA starts; the job trains on that process's device 0), so every GPU trains its own run at once. Each job's
own output (Ultralytics' progress) goes to ``OUT/logs/<run>.log``, the benchmark's progress lines to the console. A
slot dies with the benchmark (Linux: parent-death signal), so a killed benchmark leaves no training behind, and the
next run resumes what was cut short. A job holds its run's lock (``OUT/locks/<run>.lock``) while it works, so the
same run is never trained by two processes at once, whichever executor started them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

from yolo_ema.bench import evaluation, lock, runner
from yolo_ema.bench.records import ScoredRun
from yolo_ema.bench.runner import BenchmarkError, Run, Settings


def gpu_ids(device: str) -> list[str]:
    """The CUDA device indices ``device`` names (``0``, ``0,1,2,3``, ``cuda:0``, ``all``); [] for cpu and mps."""
    d = str(device).strip().lower()
    if d in ("", "cpu") or d.startswith("mps"):
        return []
    if d == "all":
        import torch

        n = torch.cuda.device_count()
        if n == 0:
            raise BenchmarkError("--device all: no CUDA device here")
        return [str(i) for i in range(n)]
    ids = [x.strip() for x in (d[5:] if d.startswith("cuda:") else d).split(",")]
    if not all(x.isdigit() for x in ids) or len(set(ids)) != len(ids):
        raise BenchmarkError(f"--device {device!r}: expected cpu, all, or distinct GPU indices such as 0 or 0,1,2,3")
    return ids


def resolve_device(device: str) -> str:
    """``all`` -> every CUDA device of this machine (``0,1,...``); anything else as given."""
    return ",".join(gpu_ids(device)) if str(device).strip().lower() == "all" else device


def default_jobs(device: str) -> int:
    """Parallel jobs: one per GPU named by ``device``; on a CPU, cores // Ultralytics' training threads."""
    gpus = gpu_ids(device)
    if gpus:
        return len(gpus)
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, min(8, cores - 1)))


def slot_pins(device: str, jobs: int) -> list[str | None]:
    """The physical GPU each of ``jobs`` slots is pinned to (None: CPU): the GPUs of ``device`` in turn, read
    through this process's own ``CUDA_VISIBLE_DEVICES`` if it has one."""
    gpus = gpu_ids(device)
    if not gpus:
        return [None] * jobs
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible:
        bad = [g for g in gpus if int(g) >= len(visible)]
        if bad:
            raise BenchmarkError(f"--device {device!r}: CUDA_VISIBLE_DEVICES={','.join(visible)} has no GPU {bad[0]}")
        gpus = [visible[int(g)] for g in gpus]
    return [gpus[i % len(gpus)] for i in range(jobs)]


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker finishes its job and exits with the pool
        pass


def _init_slot(pin: str | None) -> None:
    """A slot process starts: it dies with its parent and, pinned, sees only its GPU (before CUDA initialises)."""
    _die_with_parent()
    if pin is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = pin


@contextlib.contextmanager
def output_to(path: Path):
    """Send this process's stdout/stderr (file descriptors 1 and 2) to ``path`` for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield path
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for target, old in zip((1, 2), saved):
            os.dup2(old, target)
            os.close(old)


def log_path(out: Path, run: Run) -> Path:
    """A run's output log (not in the run folder, which a fresh start clears)."""
    return Path(out) / "logs" / f"{run.name}.log"


def job(run: Run, data_yaml: Path, settings: Settings, out: Path, ev: dict, pin: str | None = None) -> ScoredRun:
    """In a slot: train ``run`` (or reuse/resume it), evaluate its weights and score the bootstrap draws, with the
    output in the run's log. ``pin``: the slot's GPU (the job then uses device 0, the only one it sees)."""
    worker = runner.local_worker() + (f" GPU {pin}" if pin is not None else "")
    if pin is not None:
        settings, ev = dataclasses.replace(settings, device="0"), {**ev, "device": "0"}
    with output_to(log_path(out, run)):
        return train_and_score(run, data_yaml, settings, out, ev, print, worker=worker)


def train_and_score(run, data_yaml, settings, out, ev, log, train_fn=None, worker=None) -> ScoredRun:
    """The run trained (or reused/resumed), evaluated and scored on the bootstrap draws, under the run's lock.
    ``ev``: evaluation settings (data, split, imgsz, protocol, device, resamples)."""
    with lock.hold(Path(out) / "locks", f"{run.name}.lock", wait=True, log=log):
        trained = runner.train_run(run, data_yaml, settings, out, train_fn=train_fn, log=log, worker=worker)
        folder = runner.run_dir(out, run)
        resamples = ev["resamples"]
        ev = {k: v for k, v in ev.items() if k != "resamples"}
        metrics = evaluation.evaluate_run(trained, folder=folder, log=log, **ev)
        scores = evaluation.bootstrap_scores(trained.run, metrics, folder, ev["data"], ev["split"], ev["imgsz"],
                                             ev["protocol"], resamples, log)  # fmt: skip
    return ScoredRun(trained, metrics, scores)


def progress(scored: ScoredRun) -> str:
    """A finished job's progress line: run, status, worker, COCO AP50."""
    t = scored.trained
    ap50 = (scored.metrics.get("coco") or {}).get("AP50")
    ap50 = "n/a" if ap50 is None else f"{ap50:.3f}"
    return f"{t.run}: {t.status} ({t.worker or 'worker unknown'}), COCO AP50 {ap50}"


def run_slots(fn: Callable, items: list, pins: list, done: Callable[[int, object], None]) -> list:
    """``fn(item, pin)`` for every item, each in one of ``len(pins)`` slot processes (slot k pinned to ``pins[k]``),
    a slot taking the next item as soon as it is free; ``done(i, result)`` as each finishes; results in item order.
    A failed item stops every slot at once and raises its error."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    pools = [ProcessPoolExecutor(1, mp_context=ctx, initializer=_init_slot, initargs=(p,)) for p in pins]
    results: dict[int, object] = {}
    todo = list(range(len(items)))[::-1]
    running = {}  # future -> (item index, slot)
    try:
        free = list(range(len(pins)))[::-1]
        while todo or running:
            while todo and free:
                i, k = todo.pop(), free.pop()
                running[pools[k].submit(fn, items[i], pins[k])] = (i, k)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                i, k = running.pop(f)
                if f.exception() is not None:  # a failed job stops the benchmark with its error, now
                    raise f.exception()
                results[i] = f.result()
                free.append(k)
                done(i, results[i])
    finally:
        for pool in pools:
            procs = list((getattr(pool, "_processes", None) or {}).values())  # no public way before 3.14
            pool.shutdown(wait=not running, cancel_futures=True)
            if running:
                for p in procs:
                    p.kill()
    return [results[i] for i in range(len(items))]


def _slot_job(run: Run, pin: str | None, data_yaml, settings, out, ev) -> dict:
    return job(run, data_yaml, settings, out, ev, pin)


def run_all(
    runs: list[Run],
    data_yaml: Path,
    settings: Settings,
    out: Path,
    ev: dict,
    jobs: int,
    log: Callable[[str], None],
    train_fn: Callable | None = None,
) -> list[ScoredRun]:
    """Every run trained and evaluated here, ``jobs`` at a time (pinned to the GPUs of ``settings.device`` in turn);
    records in the order of ``runs``. The Dask executor is :func:`yolo_ema.bench.cluster.run_all`."""
    if jobs <= 1 or train_fn is not None or len(runs) <= 1:
        recs = []
        for i, r in enumerate(runs, 1):
            log(f"[{i}/{len(runs)}] {r.name}: training ({settings.epochs} epochs, imgsz {settings.imgsz})")
            recs.append(train_and_score(r, data_yaml, settings, out, ev, log, train_fn))
        return recs
    import functools

    pins = slot_pins(settings.device, jobs)
    where = "" if pins[0] is None else " (slots pinned to GPUs " + ", ".join(dict.fromkeys(pins)) + ")"
    log(f"{len(runs)} runs, {jobs} at a time{where} (each run's output: logs/<run>.log)")
    count = [0]

    def done(i: int, scored: ScoredRun) -> None:
        count[0] += 1
        log(f"[{count[0]}/{len(runs)}] {progress(scored)}")

    fn = functools.partial(_slot_job, data_yaml=data_yaml, settings=settings, out=out, ev=ev)
    return run_slots(fn, runs, pins, done)
