"""The benchmark's runs on a Dask distributed cluster (``yolo-ema benchmark --scheduler ADDRESS``).

Each (model, seed) run, with its evaluation and bootstrap scoring, is one task (:func:`task`: the local slots'
:func:`yolo_ema.bench.jobs.train_and_score`, in a fresh process the worker starts) that asks the scheduler for the
worker resources it needs: ``GPU=<number of GPUs in --device>`` on a GPU, ``runs=1`` on a CPU (start CPU workers with
``--resources runs=1`` so each trains one run at a time). On the worker, ``--device`` names the GPUs as that worker
sees them: start one worker per GPU, each with its own ``CUDA_VISIBLE_DEVICES`` (dask-cuda's ``dask cuda worker``
sets it per worker), and runs train on device 0. The driver gathers the records and writes the report.

Every worker must see ``--out`` (and the data) at the same path: run folders, logs and locks live there. A worker
that dies mid-run leaves the run's ``last.pt``: the scheduler hands the task to another worker (up to
``distributed.scheduler.allowed-failures`` times), which resumes from it; beyond that the benchmark stops with an
error naming the run, and the same command resumes it. Dask: https://distributed.dask.org
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import traceback
import uuid
from pathlib import Path
from typing import Callable

from yolo_ema.bench import jobs
from yolo_ema.bench.records import ScoredRun
from yolo_ema.bench.runner import BenchmarkError, Run, Settings

INSTALL = "pip install 'yolo-ema[dask]'"
CONNECT_TIMEOUT = "30s"


def distributed():
    """The ``distributed`` package, or a clear error saying how to install it."""
    try:
        import distributed as d
    except ImportError as e:
        raise BenchmarkError(f"--scheduler needs Dask distributed, which is not installed ({e}): {INSTALL}") from None
    return d


def resources(device: str) -> dict:
    """What one run asks of a worker: ``{"GPU": n}`` for ``n`` CUDA devices, ``{"runs": 1}`` on a CPU."""
    if str(device).strip().lower() == "all":
        raise BenchmarkError(
            "--device all with --scheduler: name the GPUs one run uses inside its worker (0, or 0,1 for DDP)"
        )
    gpus = jobs.gpu_ids(device)
    return {"GPU": len(gpus)} if gpus else {"runs": 1}


def preflight(device: str) -> dict:
    """Fail before any work if ``--scheduler`` cannot be used: Dask missing or ``--device`` unusable; the resources
    each run will ask for."""
    distributed()
    return resources(device)


def connect(address: str, timeout: str = CONNECT_TIMEOUT):
    """A client of the scheduler at ``address``; an unreachable one is an error naming it."""
    d = distributed()
    try:
        return d.Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as e:
        raise BenchmarkError(f"--scheduler {address}: cannot reach the Dask scheduler ({e})") from None


def task(run: Run, data_yaml: Path, settings: Settings, out: Path, ev: dict) -> ScoredRun:
    """On a Dask worker: one run trained (or reused/resumed), evaluated and scored in a fresh Python process (its
    output in the run's log), which dies with the worker.

    A fresh process because training inside the worker process itself did not reproduce a fresh process's numbers
    (measured: other losses from the first epoch on, for the same seed and settings), and it frees the GPU's memory
    after each run."""
    from distributed import get_worker

    worker = get_worker().address
    if not Path(data_yaml).is_file():
        raise BenchmarkError(
            f"run {run.name} on worker {worker}: {data_yaml} not found; --out and the data must be on storage every "
            "worker sees at the same path"
        )
    log = jobs.log_path(out, run)
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="yolo-ema-task-") as tmp:
        job = Path(tmp) / "job.pkl"
        job.write_bytes(pickle.dumps((run, data_yaml, settings, out, ev, worker)))
        with open(log, "ab") as f:
            p = subprocess.run([sys.executable, "-m", "yolo_ema.bench.cluster", str(job)], stdin=subprocess.DEVNULL,
                               stdout=f, stderr=subprocess.STDOUT, check=False)  # fmt: skip
        result = job.with_name("result.pkl")
        if result.is_file():
            ok, value = pickle.loads(result.read_bytes())
            if ok:
                return value
            raise value
    how = f"signal {-p.returncode}" if p.returncode < 0 else f"exit status {p.returncode}"
    raise BenchmarkError(f"run {run.name} on worker {worker}: its process ended ({how}) without a result; see {log}")


def _child(job: Path) -> None:
    """The process :func:`task` starts: run the job in ``job`` and leave ``(ok, ScoredRun or error)`` beside it."""
    jobs._init_slot(None)  # dies with the worker
    run, data_yaml, settings, out, ev, worker = pickle.loads(job.read_bytes())
    try:
        value = True, jobs.train_and_score(run, data_yaml, settings, out, ev, print, worker=worker)
    except Exception as e:
        traceback.print_exc()
        try:
            value = False, pickle.loads(pickle.dumps(e))
        except Exception:  # an error that does not pickle travels as its text
            value = False, BenchmarkError(f"run {run.name} on worker {worker}: {type(e).__name__}: {e}")
    tmp = job.with_name("result.tmp")
    tmp.write_bytes(pickle.dumps(value))
    os.replace(tmp, job.with_name("result.pkl"))


def _offers(client, need: dict) -> list[str]:
    """Addresses of the workers whose resources cover ``need``."""
    try:
        info = client.scheduler_info(n_workers=-1)  # every worker (the default lists 5 in recent releases)
    except TypeError:  # older distributed: every worker
        info = client.scheduler_info()
    return [
        a
        for a, w in info.get("workers", {}).items()
        if all((w.get("resources") or {}).get(k, 0) >= v for k, v in need.items())
    ]


def run_all(runs: list[Run], data_yaml: Path, settings: Settings, out: Path, ev: dict, log: Callable,
            scheduler: str) -> list[ScoredRun]:  # fmt: skip
    """Every run as one task on the cluster at ``scheduler``; records in the order of ``runs``."""
    d = distributed()
    need = resources(settings.device)
    ask = " ".join(f"{k}={v}" for k, v in need.items())
    with connect(scheduler) as client:
        able = _offers(client, need)
        log(f"{len(runs)} runs on the Dask cluster {scheduler}, each asking for {ask}: {len(able)} worker(s) offer it"
            " now (each run's output: logs/<run>.log)")  # fmt: skip
        if not able:
            log(f"waiting for a worker with {ask}: start one with `dask worker {scheduler} --resources {ask}`")
        tag = uuid.uuid4().hex[:8]
        futures = {
            client.submit(
                task, r, data_yaml, settings, out, ev, resources=need, pure=False, key=f"yolo-ema-{r.name}-{tag}"
            ): i  # fmt: skip
            for i, r in enumerate(runs)
        }
        results: dict[int, ScoredRun] = {}
        try:
            for f in d.as_completed(futures):
                i = futures[f]
                try:
                    scored = f.result()
                except d.KilledWorker as e:
                    raise BenchmarkError(
                        f"run {runs[i].name}: its Dask worker died while training it ({e}); the finished runs are "
                        f"kept in {out}: run the same command again to resume it from its last.pt"
                    ) from None
                results[i] = scored
                log(f"[{len(results)}/{len(runs)}] {jobs.progress(scored)}")
        finally:
            if len(results) < len(runs):
                client.cancel(list(futures))  # a task already running finishes on its worker, under its run lock
    return [results[i] for i in range(len(runs))]


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
