"""The benchmark's executors: local slots pinned to GPUs, a Dask cluster on loopback (scheduler and two workers as
separate processes, every socket on 127.0.0.1), the OUT lock and the per-run lock.

The cluster tests run `yolo-ema benchmark --scheduler` for real: the records must equal the local pool's (same
weights bit for bit, same report tables), both workers must have trained runs, and a worker SIGKILLed inside epoch 2
of a run (by a training callback the test installs through a ``sitecustomize`` on the workers' PYTHONPATH) leaves a
run that the next invocation resumes from its ``last.pt`` without retraining the finished one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from yolo_ema.bench import cluster, jobs, lock
from yolo_ema.bench.runner import BenchmarkError, Run, Settings

TINY = ["--synthetic-images", "40", "--synthetic-size", "64", "--imgsz", "64", "--batch", "8", "--pretrain-epochs", "0"]
TINY += ["--arms", "ema", "--resamples", "50", "--latency-sizes", "64", "--latency-runs", "1", "--latency-warmup", "0"]
CONTROL = "YOLO_EMA_TEST_CONTROL"
WAIT = 300  # seconds: the bound of every wait below (each ends as soon as its condition holds)

# Loaded by every process of the test cluster (PYTHONPATH). Once Ultralytics' callbacks module is imported it adds
# two default callbacks driven by the JSON file named in $YOLO_EMA_TEST_CONTROL, if it exists:
# - on_train_start: append the run's folder name to control["starts"] (every training start, resumes included);
# - on_train_batch_end, in epoch 2 of control["kill_run"], once: wait for control["after"] to exist, note whether
#   the driver holds OUT/.lock, write control["marker"], then SIGKILL the Dask worker (this training process's
#   parent) and itself.
SITECUSTOMIZE = """
import json, os, signal, sys, time
from pathlib import Path

TARGET = "ultralytics.utils.callbacks.base"


def _control():
    path = os.environ.get("YOLO_EMA_TEST_CONTROL")
    return json.loads(Path(path).read_text()) if path and Path(path).is_file() else None


def _started(trainer):
    c = _control()
    if c and c.get("starts"):
        with open(c["starts"], "a") as f:
            f.write(Path(trainer.save_dir).name + "\\n")


def _kill(trainer):
    c = _control()
    if not c or not c.get("kill_run") or trainer.epoch != 1 or Path(trainer.save_dir).name != c["kill_run"]:
        return
    marker = Path(c["marker"])
    if marker.exists():
        return
    deadline = time.monotonic() + 300
    while not Path(c["after"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    import fcntl

    fd = os.open(c["out_lock"], os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = False
    except BlockingIOError:
        held = True
    os.close(fd)
    marker.write_text(json.dumps({"worker_pid": os.getppid(), "driver_holds_out_lock": held}))
    os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


class _AddCallbacks:
    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path)
        exec_module = spec.loader.exec_module

        def exec_and_add(module):
            exec_module(module)
            module.default_callbacks["on_train_start"].append(_started)
            module.default_callbacks["on_train_batch_end"].append(_kill)

        spec.loader.exec_module = exec_and_add
        return spec


sys.meta_path.insert(0, _AddCallbacks())
"""


# ---------------------------------------------------------------- local slots, pinned to (fake) GPUs


def test_gpu_ids_and_slot_pins(monkeypatch):
    assert jobs.gpu_ids("cpu") == [] and jobs.gpu_ids("mps") == []
    assert jobs.gpu_ids("0,1,2,3") == ["0", "1", "2", "3"] and jobs.gpu_ids("cuda:1") == ["1"]
    for bad in ("0,0", "gpu", "0,x"):
        with pytest.raises(BenchmarkError, match=f"--device '{bad}'"):
            jobs.gpu_ids(bad)
    assert jobs.default_jobs("0") == 1 and jobs.default_jobs("0,1,2,3") == 4
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert jobs.slot_pins("cpu", 2) == [None, None]
    assert jobs.slot_pins("0,1", 4) == ["0", "1", "0", "1"]  # more slots than GPUs: the GPUs in turn
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")  # the benchmark itself was given GPUs 5 and 7
    assert jobs.slot_pins("0,1", 2) == ["5", "7"]
    with pytest.raises(BenchmarkError, match="CUDA_VISIBLE_DEVICES=5,7 has no GPU 2"):
        jobs.slot_pins("0,2", 2)


def test_device_all():
    import torch

    n = torch.cuda.device_count()
    if n:
        assert jobs.resolve_device("all") == ",".join(str(i) for i in range(n))
    else:
        with pytest.raises(BenchmarkError, match="--device all: no CUDA device here"):
            jobs.resolve_device("all")
    assert jobs.resolve_device("0,1") == "0,1"


def probe(item: int, pin: str, folder: str) -> dict:
    """Runs in a slot: note it started, wait (bounded) until both slots have started an item, report where it ran."""
    Path(folder, f"{pin}-{item}").write_text("")
    deadline = time.monotonic() + WAIT
    while len({p.name.split("-")[0] for p in Path(folder).iterdir()}) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    together = len({p.name.split("-")[0] for p in Path(folder).iterdir()}) == 2
    return {"item": item, "pin": pin, "pid": os.getpid(), "env": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "together": together}  # fmt: skip


def test_pinned_slots_one_job_per_gpu_at_once(tmp_path, monkeypatch):
    """--device 0,1 without a GPU: two slot processes, each seeing only its GPU, both busy at once."""
    import functools

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,6")
    pins = jobs.slot_pins("0,1", jobs.default_jobs("0,1"))
    assert pins == ["3", "6"]
    finished = []
    res = jobs.run_slots(functools.partial(probe, folder=str(tmp_path)), [0, 1, 2, 3, 4], pins,
                         lambda i, r: finished.append(i))  # fmt: skip
    assert [r["item"] for r in res] == [0, 1, 2, 3, 4] and sorted(finished) == [0, 1, 2, 3, 4]
    assert all(r["env"] == r["pin"] for r in res)  # each job sees only its slot's GPU
    assert all(r["together"] for r in res)  # the two slots ran at the same time
    by_pin = {p: {r["pid"] for r in res if r["pin"] == p} for p in pins}
    assert all(len(v) == 1 for v in by_pin.values()) and by_pin["3"] != by_pin["6"]  # one process per GPU
    assert os.getpid() not in by_pin["3"] | by_pin["6"]


def test_pinned_job_trains_on_its_only_gpu(tmp_path, monkeypatch):
    """In a slot pinned to a GPU, the run's training and evaluation use device 0 (the only one it sees) and the
    record names the slot's process and GPU."""
    seen = {}

    def fake(run, data_yaml, settings, out, ev, log, train_fn=None, worker=None):
        seen.update(device=settings.device, ev_device=ev["device"], worker=worker)
        os.write(1, b"training output\n")  # what Ultralytics writes goes to file descriptor 1 in a slot
        return {"run": run.name}

    monkeypatch.setattr(jobs, "train_and_score", fake)
    run = Run("baseline", "yolov8n", "yolov8n.yaml", 0)
    s = Settings(epochs=1, imgsz=64, batch=2, device="0,1")
    assert jobs.job(run, tmp_path / "d.yaml", s, tmp_path, {"device": "0,1"}, pin="6") == {"run": "yolov8n-seed0"}
    assert seen["device"] == "0" and seen["ev_device"] == "0"
    assert seen["worker"].endswith(f"/{os.getpid()} GPU 6")
    assert "training output" in (tmp_path / "logs" / "yolov8n-seed0.log").read_text()  # the job's output: its log


# ---------------------------------------------------------------- locks


HOLDER = """
import sys
from yolo_ema.bench import lock
with lock.hold(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def _holder(folder: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)  # fmt: skip
    assert p.stdout.readline() == "held\n"
    return p


def test_second_driver_on_same_out_is_refused(tmp_path, capsys):
    import socket

    from yolo_ema.cli import main

    out = tmp_path / "bench"
    holder = _holder(out)  # another benchmark holds OUT
    try:
        assert main(["benchmark", "--out", str(out), "--seeds", "0", *TINY]) == 2
        err = capsys.readouterr().err
        assert str(out) in err and f"pid {holder.pid} on {socket.gethostname()}" in err
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing touched
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock, no stale lock file blocks the next benchmark
        holder.wait(timeout=WAIT)
    with lock.hold(out) as path:
        assert path.read_text().startswith(f"pid {os.getpid()} on ")


def test_run_lock_waits_for_its_holder(tmp_path):
    """A second trainer of the same run waits until the first lets go (then sees its finished run)."""
    events, got = [], threading.Event()
    waiting = threading.Event()

    def second():
        with lock.hold(tmp_path / "locks", "r.lock", wait=True, log=lambda m: (events.append(m), waiting.set())):
            got.set()

    with lock.hold(tmp_path / "locks", "r.lock", wait=True):
        t = threading.Thread(target=second)
        t.start()
        assert waiting.wait(WAIT)
        assert not got.is_set() and f"pid {os.getpid()}" in events[0]
    t.join(WAIT)
    assert got.is_set()


# ---------------------------------------------------------------- Dask: errors before any work


def test_scheduler_errors_name_the_fix(tmp_path, monkeypatch, capsys):
    from yolo_ema.cli import main

    with pytest.raises(BenchmarkError, match="tcp://127.0.0.1:9: cannot reach the Dask scheduler"):
        cluster.connect("tcp://127.0.0.1:9", timeout="1s")
    assert main(["benchmark", "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9", "--device", "all"]) == 2
    assert "--device all with --scheduler" in capsys.readouterr().err
    assert cluster.resources("0") == {"GPU": 1} and cluster.resources("0,1") == {"GPU": 2}
    assert cluster.resources("cpu") == {"runs": 1}
    monkeypatch.setitem(sys.modules, "distributed", None)  # Dask not installed
    assert main(["benchmark", "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "pip install 'yolo-ema[dask]'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before any work


# ---------------------------------------------------------------- Dask: a loopback cluster


def _tree(procs) -> list:
    import psutil

    out = []
    for p in procs:
        try:
            q = psutil.Process(p.pid)
            out += [q, *q.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return out


def _non_loopback(procs) -> list:
    """Every inet socket of the cluster's processes that is not on 127.0.0.1."""
    import psutil

    bad = []
    for q in _tree(procs):
        try:
            conns = q.net_connections("inet")
        except psutil.NoSuchProcess:
            continue
        for c in conns:
            for a in (c.laddr, c.raddr):
                if a and a.ip != "127.0.0.1":
                    bad.append((q.pid, q.cmdline()[:4], c))
    return bad


def _wait_for(cond, what: str, procs=()):
    deadline = time.monotonic() + WAIT
    while not cond():
        dead = [p.args for p in procs if p.poll() is not None]
        assert not dead, f"{what}: a cluster process ended: {dead}"
        assert time.monotonic() < deadline, f"{what}: not within {WAIT} s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """`dask scheduler` and two `dask worker --resources runs=1` processes on 127.0.0.1, started from the CLI."""
    from distributed import Client

    d = tmp_path_factory.mktemp("dask")
    (d / "hook").mkdir()
    (d / "hook" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ, YOLO_OFFLINE="1", **{CONTROL: str(d / "control.json")})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(d / "hook"), os.environ.get("PYTHONPATH")]))
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "0"  # a worker death fails its task: the driver stops
    sched = d / "scheduler.json"
    loop = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0", "--no-dashboard"]
    procs, logs = [], []

    def start(args, name):
        logs.append(open(d / f"{name}.log", "w"))
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, cwd=d, stdout=logs[-1],
                                      stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip

    try:
        start(["scheduler", "--port", "0", "--scheduler-file", str(sched), *loop], "scheduler")
        _wait_for(sched.is_file, "scheduler file", procs)
        for k in (1, 2):
            start(["worker", "--scheduler-file", str(sched), "--nthreads", "1", "--resources", "runs=1",
                   "--name", f"w{k}", "--local-directory", str(d / f"w{k}"), *loop], f"worker{k}")  # fmt: skip
        address = json.loads(sched.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=WAIT)
            yield {"address": address, "client": client, "procs": procs, "dir": d, "control": d / "control.json"}
    finally:
        for p in reversed(procs):  # the workers first, then the scheduler
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=60)
        for f in logs:
            f.close()


def _untimed(ev: dict) -> dict:
    """An evaluation without its prediction timings."""
    return {**ev, "run": {k: v for k, v in ev["run"].items() if k not in ("predict_seconds", "images_per_second")}}


def _workers(client) -> set:
    return set(client.scheduler_info(n_workers=-1)["workers"])


@pytest.mark.slow
def test_dask_grid_equals_the_local_pool(dask_cluster, tmp_path, capsys):
    """Two seeds x (baseline, EMA) through --scheduler on the two-worker cluster and through the local pool of two
    processes: the same weights bit for bit, the same metrics and bootstrap, both workers used, each run naming its
    worker."""
    import torch

    from yolo_ema.cli import main

    args = [*TINY, "--seeds", "0", "1", "--epochs", "1", "--cache", str(tmp_path / "data")]
    workers = _workers(dask_cluster["client"])
    assert main(["benchmark", "--out", str(tmp_path / "dask"), "--scheduler", dask_cluster["address"], *args]) == 0
    assert main(["benchmark", "--out", str(tmp_path / "local"), "--jobs", "2", *args]) == 0
    capsys.readouterr()
    remote, local = (json.loads((tmp_path / k / "report.json").read_text()) for k in ("dask", "local"))
    assert [r["run"] for r in remote["runs"]] == [r["run"] for r in local["runs"]] and len(local["runs"]) == 4
    assert remote["metrics"] == local["metrics"] and remote["bootstrap"] == local["bootstrap"]
    for a, b in zip(remote["runs"], local["runs"]):
        assert a["status"] == b["status"] == "trained" and a["val"] == b["val"]
        assert _untimed(a["eval"]) == _untimed(b["eval"]) and a["eval"]["n_dets"] > 0
        assert (Path(a["weights"]).parents[1] / a["eval"]["detections"]).read_bytes() == (
            Path(b["weights"]).parents[1] / b["eval"]["detections"]
        ).read_bytes()  # the same detections
        wa, wb = (
            torch.load(r["weights"], map_location="cpu", weights_only=False)["model"].state_dict() for r in (a, b)
        )
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), a["run"]
    assert {r["worker"] for r in remote["runs"]} == workers  # both workers trained runs
    pids = {r["worker"].split("/")[1] for r in local["runs"]}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # the local pool's two processes
    md = {k: (tmp_path / k / "report.md").read_text() for k in ("dask", "local")}
    table = {k: v[v.index("## Accuracy") : v.index("\n## ", v.index("## Accuracy") + 3)] for k, v in md.items()}
    assert table["dask"] == table["local"] and "| COCO AP50 |" in table["dask"]
    assert not _non_loopback(dask_cluster["procs"])


@pytest.mark.slow
def test_worker_killed_mid_run_resumes_next_invocation(dask_cluster, tmp_path, capsys):
    """A worker SIGKILLed in epoch 2 of the EMA run (after the baseline finished on the other worker): the driver
    stops with an error naming the run; the next invocation skips the baseline and resumes the EMA run from its
    last.pt, on whichever worker is free."""
    from yolo_ema.cli import main

    out = tmp_path / "bench"
    args = ["--out", str(out), "--scheduler", dask_cluster["address"], *TINY, "--seeds", "0", "--epochs", "2"]
    marker, starts = tmp_path / "killed.json", tmp_path / "starts.txt"
    control = {"kill_run": "yolov8n-ema-seed0", "after": str(out / "runs" / "yolov8n-seed0" / "done.json"),
               "marker": str(marker), "starts": str(starts), "out_lock": str(out / ".lock")}  # fmt: skip
    dask_cluster["control"].write_text(json.dumps(control))
    try:
        before = _workers(dask_cluster["client"])
        assert main(["benchmark", *args]) == 2
        err = capsys.readouterr().err
        assert "run yolov8n-ema-seed0: its Dask worker died" in err and "resume it from its last.pt" in err
        killed = json.loads(marker.read_text())
        assert killed["driver_holds_out_lock"]  # the driver held OUT for its whole life
        runs = out / "runs"
        assert (runs / "yolov8n-seed0" / "done.json").is_file()
        assert not (runs / "yolov8n-ema-seed0" / "done.json").exists()
        assert (runs / "yolov8n-ema-seed0" / "weights" / "last.pt").is_file()
        _wait_for(lambda: len(_workers(dask_cluster["client"])) == 2, "the killed worker's restart")
        assert main(["benchmark", *args]) == 0
    finally:
        dask_cluster["control"].unlink()
    rep = json.loads((out / "report.json").read_text())
    assert [(r["run"], r["status"]) for r in rep["runs"]] == [("yolov8n-seed0", "skipped"),
                                                             ("yolov8n-ema-seed0", "resumed")]  # fmt: skip
    assert sorted(starts.read_text().split()) == ["yolov8n-ema-seed0"] * 2 + ["yolov8n-seed0"]  # no retraining
    epochs = (runs / "yolov8n-ema-seed0" / "results.csv").read_text().splitlines()[1:]
    assert [int(float(r.split(",")[0])) for r in epochs] == [1, 2]  # epoch 1 kept, epoch 2 after the resume
    assert rep["runs"][0]["worker"] in before  # the baseline names the worker that trained it, not a later one
    assert rep["runs"][1]["worker"] in _workers(dask_cluster["client"])
    assert not _non_loopback(dask_cluster["procs"])
