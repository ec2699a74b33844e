"""Faults during training and data preparation: SIGKILL mid-epoch, a non-finite step, a full disk."""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CFG, write_tiny_yolo_dataset

from yolo_ema import EMA

BIN = Path(sys.executable).parent
YOLO_BIN = shutil.which("yolo") or str(BIN / "yolo")
YOLO_EMA_BIN = shutil.which("yolo-ema") or str(BIN / "yolo-ema")
ENV = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "True"}


def _epochs(run_dir: Path) -> list[int]:
    return [int(float(r["epoch"])) for r in csv.DictReader((run_dir / "results.csv").open())]


def _ema_layers(path: Path) -> list[EMA]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = ckpt.get("ema") or ckpt["model"]  # final (stripped) checkpoints keep the weights under "model"
    return [m for m in model.modules() if isinstance(m, EMA)]


def _assert_finite_ema(path: Path) -> list[EMA]:
    layers = _ema_layers(path)
    assert len(layers) == 3, path
    for i, layer in enumerate(layers):
        for k, v in layer.state_dict().items():
            assert torch.isfinite(v).all(), f"{path.name}: EMA layer {i} {k} is not finite"
    return layers


# --- 1. SIGKILL mid-epoch, then `yolo train resume` -------------------------------------------------------------------


# `yolo train` with one extra default callback: at the end of the first batch of epoch 2 it writes a marker and
# SIGKILLs its own process group, so the kill lands at the same point on a fast or a slow machine.
KILLING_YOLO = """
import os, signal, sys
from pathlib import Path

from ultralytics.cfg import entrypoint
from ultralytics.utils.callbacks.base import default_callbacks


def kill_in_epoch_2(trainer):
    if trainer.epoch == 1:  # 0-based: epoch 1 is trained, validated and saved in last.pt
        Path(os.environ["KILL_MARKER"]).write_text(f"killed in epoch {trainer.epoch + 1}\\n")
        os.killpg(os.getpgrp(), signal.SIGKILL)


default_callbacks["on_train_batch_end"].append(kill_in_epoch_2)
sys.exit(entrypoint())
"""


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_finishes(tmp_path):
    data = write_tiny_yolo_dataset(tmp_path / "data", n_train=8, n_val=4)
    project = tmp_path / "runs"
    run_dir = project / "kill"
    last = run_dir / "weights" / "last.pt"
    marker = tmp_path / "killed"
    wrapper = tmp_path / "killing_yolo.py"
    wrapper.write_text(KILLING_YOLO)
    args = (
        f"train model={CFG / 'yolov8n-ema.yaml'} data={data} epochs=3 imgsz=64 batch=2 workers=0 device=cpu "
        f"plots=False amp=False seed=0 project={project} name=kill"
    )
    # a fresh session / process group: the kill reaches every process the CLI may have started
    with (tmp_path / "train.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(wrapper), *args.split()],
            stdout=log, stderr=subprocess.STDOUT, env={**ENV, "KILL_MARKER": str(marker)}, start_new_session=True,
        )  # fmt: skip
        try:
            rc = proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert rc == -signal.SIGKILL, (rc, (tmp_path / "train.log").read_text()[-3000:])
    assert marker.read_text() == "killed in epoch 2\n"
    with pytest.raises(ProcessLookupError):  # nothing of the group survived
        os.killpg(proc.pid, 0)
    assert _epochs(run_dir) == [1], "killed during epoch 2: only epoch 1 may be recorded"
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 0

    r = subprocess.run(
        [YOLO_BIN, "train", "resume", f"model={last}"], capture_output=True, text=True, env=ENV, timeout=600
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "Resuming training" in out
    assert _epochs(run_dir) == [1, 2, 3]
    for name in ("last.pt", "best.pt"):
        _assert_finite_ema(run_dir / "weights" / name)
    from ultralytics import YOLO

    model = YOLO(str(run_dir / "weights" / "best.pt"))
    assert sum(isinstance(m, EMA) for m in model.model.modules()) == 3


# --- 2. A non-finite step: what reaches the checkpoint ----------------------------------------------------------------


def _train_with_nan(tmp_path: Path, epochs: int, inject_epoch: int, monkeypatch):
    """Train in process; at the end of the first batch of ``inject_epoch`` set conv1x1.weight of the first EMA layer
    (model.16) to NaN in the live model and in the trainer's EMA copy, as a non-finite optimizer step would.
    Returns the run folder, the Ultralytics warnings and the injected tensor's value before the fault."""
    from ultralytics import YOLO
    from ultralytics.engine import trainer as trainer_mod
    from ultralytics.utils.torch_utils import unwrap_model

    warnings: list[str] = []
    real_warning = trainer_mod.LOGGER.warning

    def record(msg, *a, **k):
        warnings.append(str(msg))
        return real_warning(msg, *a, **k)

    monkeypatch.setattr(trainer_mod.LOGGER, "warning", record)
    data = write_tiny_yolo_dataset(tmp_path / "data", n_train=8, n_val=4)
    before = {}

    def inject(tr):
        if tr.epoch == inject_epoch and not before:
            for model in (unwrap_model(tr.model), tr.ema.ema):
                layer = model.model[16]
                assert isinstance(layer, EMA)
                before.setdefault("w", layer.conv1x1.weight.detach().clone())
                with torch.no_grad():
                    layer.conv1x1.weight.fill_(float("nan"))

    model = YOLO(str(CFG / "yolov8n-ema.yaml"))
    model.add_callback("on_train_batch_end", inject)
    model.train(
        data=str(data), epochs=epochs, imgsz=64, batch=2, workers=0, device="cpu", plots=False, amp=False, seed=0,
        project=str(tmp_path / "runs"), name="nan", exist_ok=True, verbose=False,
    )  # fmt: skip
    assert before, "the fault was never injected"
    return tmp_path / "runs" / "nan", warnings, before["w"]


@pytest.mark.slow
def test_nan_after_first_epoch_recovers_from_last_pt(tmp_path, monkeypatch):
    """NaN in epoch 2 of 2: Ultralytics reloads last.pt (epoch 1), redoes the epoch; checkpoints stay finite."""
    run_dir, warnings, w0 = _train_with_nan(tmp_path, epochs=2, inject_epoch=1, monkeypatch=monkeypatch)
    assert any("Loss NaN/Inf detected (attempt 1/3), recovering from last.pt" in w for w in warnings), warnings
    assert _epochs(run_dir) == [1, 2]  # the poisoned pass of epoch 2 is not recorded
    for name in ("last.pt", "best.pt"):
        w = _assert_finite_ema(run_dir / "weights" / name)[0].conv1x1.weight
        assert w.abs().sum() > 0.1 * w0.abs().sum()  # real trained weights, not the zeros of a nan_to_num
    rows = list(csv.DictReader((run_dir / "results.csv").open()))
    assert all(v.strip() != "nan" for r in rows for v in r.values())


@pytest.mark.slow
def test_nan_in_first_epoch_fails_loudly(tmp_path, monkeypatch):
    """Ultralytics 8.4.190 cannot recover NaN in the first epoch of a run (no earlier last.pt): it warns, carries on,
    and save_model()'s nan_to_num_ pass would write the NaN EMA-layer weight as exact zeros (finite but destroyed).
    yolo-ema's guard stops the run instead, naming the tensor, before any checkpoint is written."""
    from yolo_ema.seam import NonFinitePluginLayerError

    with pytest.raises(NonFinitePluginLayerError, match=r"model\.16\.conv1x1\.weight.*would save them as zeros"):
        _train_with_nan(tmp_path, epochs=1, inject_epoch=0, monkeypatch=monkeypatch)
    assert not (tmp_path / "runs" / "nan" / "weights" / "last.pt").exists()


# --- 4. Full disk during `yolo-ema prepare visdrone` ------------------------------------------------------------------


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def synthetic_src(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("syn") / "src"
    r = subprocess.run(
        [YOLO_EMA_BIN, "prepare", "synthetic", "--out", str(src), "--images", "12", "--size", "128", "--no-progress"],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return src


def _prepare(src: Path, out: Path, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [YOLO_EMA_BIN, "prepare", "visdrone", "--source", str(src), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, env=ENV, timeout=300, preexec_fn=preexec_fn,
    )  # fmt: skip


def _limit_file_size(limit: int):
    def pre():  # in the child: writes past `limit` bytes fail with EFBIG instead of killing it with SIGXFSZ
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre


@pytest.fixture
def tiny_fs(tmp_path):
    """A 512 KiB tmpfs, filled to 48 KiB free (the prepared synthetic set needs ~230 KiB); skipped where mounting is
    not allowed."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True, text=True
        )
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * (512 - 48) * 1024)
        yield mnt, filler
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _assert_clean_failure(r: subprocess.CompletedProcess, reason: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, r.stderr
    assert err.startswith("error: ") and reason in err, err
    return err


def test_full_disk_tmpfs_fails_cleanly_and_rerun_completes(synthetic_src, tiny_fs):
    mnt, filler = tiny_fs
    out = mnt / "out"
    digest = _tree_digest(synthetic_src)
    r = _prepare(synthetic_src, out)
    err = _assert_clean_failure(r, os.strerror(errno.ENOSPC))
    # Recorded: the message names the SOURCE image whose copy failed (shutil's sendfile error carries the source as
    # `filename`, the destination as `filename2`; the CLI prints only `filename`), not the full output disk.
    assert str(synthetic_src) in err
    assert not (out / "data.yaml").exists()  # no half dataset that `yolo train` would accept
    assert _tree_digest(synthetic_src) == digest

    filler.unlink()  # space again: the same command completes over the partial output
    r = _prepare(synthetic_src, out)
    assert r.returncode == 0, r.stderr
    assert (out / "data.yaml").exists() and (out / "annotations" / "val.json").exists()
    assert len(list((out / "images").rglob("*.jpg"))) == 12
    assert _tree_digest(synthetic_src) == digest


def test_full_disk_message_names_the_output(synthetic_src, tiny_fs):
    mnt, _ = tiny_fs
    r = _prepare(synthetic_src, mnt / "out")
    assert r.returncode == 1 and str(mnt / "out") in r.stderr, r.stderr


def test_file_size_limit_fails_cleanly_and_rerun_completes(synthetic_src, tmp_path):
    """Emulated full disk (works without root): RLIMIT_FSIZE makes every write past 4 KiB fail with EFBIG."""
    out = tmp_path / "out"
    digest = _tree_digest(synthetic_src)
    r = _prepare(synthetic_src, out, preexec_fn=_limit_file_size(4096))
    err = _assert_clean_failure(r, os.strerror(errno.EFBIG))
    assert err.startswith(f"error: writing {out} failed: {os.strerror(errno.EFBIG)}")
    assert not (out / "data.yaml").exists()
    assert _tree_digest(synthetic_src) == digest

    r = _prepare(synthetic_src, out)
    assert r.returncode == 0, r.stderr
    assert (out / "data.yaml").exists() and len(list((out / "images").rglob("*.jpg"))) == 12
    assert _tree_digest(synthetic_src) == digest


def test_file_size_limit_message_names_a_path(synthetic_src, tmp_path):
    r = _prepare(synthetic_src, tmp_path / "out", preexec_fn=_limit_file_size(4096))
    assert r.returncode == 1 and str(tmp_path / "out") in r.stderr, r.stderr
