"""Train-and-evaluate jobs, run side by side in a pool of processes (one job = one model x seed).

On a CPU Ultralytics trains with ``cores - 1`` torch threads (at most 8), so a 2-core machine trains on one core;
two jobs at once use both. Each job's own output (Ultralytics' progress) goes to ``OUT/logs/<run>.log``, the
benchmark's progress lines to the console. A worker dies with the benchmark (Linux: parent-death signal), so a
killed benchmark leaves no training behind, and the next run resumes what was cut short.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

from yolo_ema.bench import evaluation, runner
from yolo_ema.bench.runner import Run, Settings


def default_jobs(device: str) -> int:
    """Parallel jobs: 1 on a GPU; on a CPU, cores // Ultralytics' training threads (2 on a 2-core machine)."""
    if str(device).lower() not in ("cpu", ""):
        return 1
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, min(8, cores - 1)))


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker finishes its job and exits with the pool
        pass


def _to_log(path: Path) -> None:
    """Send this process's stdout/stderr (file descriptors 1 and 2) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def job(run: Run, data_yaml: Path, settings: Settings, out: Path, ev: dict, to_log: bool = False) -> dict:
    """Train ``run`` (or reuse/resume it), evaluate its weights and score the bootstrap draws; the run's record
    with ``eval`` and ``bootstrap`` added. ``ev``: evaluation settings (data, split, imgsz, protocol, device,
    resamples)."""
    if to_log:
        _to_log(Path(out) / "logs" / f"{run.name}.log")  # not in the run folder, which a fresh start clears
    return _train_and_score(run, data_yaml, settings, out, ev, print)


def _train_and_score(run, data_yaml, settings, out, ev, log, train_fn=None) -> dict:
    rec = runner.train_run(run, data_yaml, settings, out, train_fn=train_fn, log=log)
    folder = runner.run_dir(out, run)
    resamples = ev["resamples"]
    ev = {k: v for k, v in ev.items() if k != "resamples"}
    rec["eval"] = evaluation.evaluate_run(rec, folder=folder, log=log, **ev)
    rec["bootstrap"] = evaluation.bootstrap_scores(rec, folder, ev["data"], ev["split"], ev["imgsz"], ev["protocol"],
                                                   resamples, log)  # fmt: skip
    return rec


def run_all(
    runs: list[Run],
    data_yaml: Path,
    settings: Settings,
    out: Path,
    ev: dict,
    jobs: int,
    log: Callable[[str], None],
    train_fn: Callable | None = None,
    scheduler: str | None = None,
) -> list[dict]:
    """Every run trained and evaluated, ``jobs`` at a time; records in the order of ``runs``."""
    if jobs <= 1 or train_fn is not None or len(runs) <= 1:
        recs = []
        for i, r in enumerate(runs, 1):
            log(f"[{i}/{len(runs)}] {r.name}: training ({settings.epochs} epochs, imgsz {settings.imgsz})")
            recs.append(_train_and_score(r, data_yaml, settings, out, ev, log, train_fn))
        return recs
    import multiprocessing

    results: dict[int, dict] = {}
    ctx = multiprocessing.get_context("spawn")
    log(f"{len(runs)} runs, {jobs} at a time (each run's output: logs/<run>.log)")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_die_with_parent) as pool:
        pending = {pool.submit(job, r, data_yaml, settings, out, ev, True): i for i, r in enumerate(runs)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                i = pending.pop(f)
                if f.exception() is not None:  # a failed job stops the benchmark with its error, now
                    workers = list((getattr(pool, "_processes", None) or {}).values())  # no public way before 3.14
                    pool.shutdown(wait=False, cancel_futures=True)
                    for p in workers:
                        p.kill()
                    raise f.exception()
                rec = results[i] = f.result()
                ap50 = (rec["eval"].get("coco") or {}).get("AP50")
                log(f"[{len(results)}/{len(runs)}] {runs[i].name}: {rec['status']}, COCO AP50 {ap50:.3f}")
    return [results[i] for i in range(len(runs))]
