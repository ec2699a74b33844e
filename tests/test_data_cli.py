"""`yolo-ema prepare` end to end: the CLI chain, light imports, read-only output, kill -9 and Ultralytics' checks."""

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_data_visdrone import jpeg, out_tree, tree_digest, write_split

from yolo_ema.data import cli, synthetic

REPO = Path(__file__).resolve().parent.parent


def _cli(*argv) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(list(argv)))


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "YOLO_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def test_synthetic_then_visdrone_via_the_cli(tmp_path, capsys):
    assert _cli("synthetic", "--out", str(tmp_path / "s"), "--images", "6", "--size", "160x128") == 0
    assert "next: yolo-ema prepare visdrone --source" in capsys.readouterr().out
    assert _cli("visdrone", "--source", str(tmp_path / "s"), "--out", str(tmp_path / "o"), "--no-progress") == 0
    out = capsys.readouterr().out
    assert "visdrone: 6 images" in out and f"data: {(tmp_path / 'o/data.yaml').resolve()}" in out
    assert len(list((tmp_path / "o/labels/train").iterdir())) == 4
    assert (tmp_path / "o/report.json").is_file()


def test_cli_errors_are_one_line_and_name_the_culprit(tmp_path, capsys):
    assert _cli("visdrone", "--out", str(tmp_path / "o")) == 2
    assert "--source is required" in capsys.readouterr().err
    assert _cli("coco", "--source", str(tmp_path / "none"), "--out", str(tmp_path / "o")) == 1
    assert capsys.readouterr().err == f"error: source folder {tmp_path / 'none'} does not exist\n"


def test_prepare_modules_do_not_import_torch_or_ultralytics():
    code = (
        "import sys, yolo_ema.data.cli, yolo_ema.data.visdrone, yolo_ema.data.coco, yolo_ema.data.synthetic, "
        "yolo_ema.data.catalogue\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ultralytics', 'cv2'))\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(), cwd=REPO)


_NO_OVERRIDE = "dac_override,dac_read_search,fowner"


def _unprivileged() -> list:
    """Command prefix under which file permissions bind: as root, drop the capabilities that bypass them."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: a read-only folder cannot be made read-only for us")
    caps = ",".join(f"-{c}" for c in _NO_OVERRIDE.split(","))
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_read_only_output_fails_cleanly_and_leaves_source_alone(tmp_path):
    src = tmp_path / "src"
    write_split(src, "VisDrone2019-DET-val", {"v.jpg": jpeg(50, 50)}, {"v": "1,1,10,10,1,3,0,0\n"})
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    before = tree_digest(src)
    cmd = [*_unprivileged(), sys.executable, "-m", "yolo_ema.cli", "prepare", "visdrone", "--source", str(src)]
    try:
        for out, message in ((ro, f"output folder {ro} is not writable"), (ro / "sub", f"cannot create output folder {ro / 'sub'}")):  # fmt: skip
            r = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, env=_env(), cwd=REPO)
            assert r.returncode == 1, r.stderr
            assert message in r.stderr and "Traceback" not in r.stderr
        assert tree_digest(src) == before and list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


# `yolo-ema prepare` that counts the file operations that make output appear (os.replace, os.link) and SIGKILLs
# itself just before operation number KILL_AT (0: never; the count is written to COUNT_TO at exit).
COUNTING_PREPARE = """
import atexit, os, runpy, signal, sys

kill_at, n = int(os.environ["KILL_AT"]), 0


def counted(real):
    def op(*args, **kwargs):
        global n
        n += 1
        if n == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    return op


os.replace, os.link = counted(os.replace), counted(os.link)
atexit.register(lambda: open(os.environ["COUNT_TO"], "w").write(str(n)))
sys.argv = ["yolo-ema", *sys.argv[1:]]
runpy.run_module("yolo_ema.cli", run_name="__main__")
"""


@pytest.mark.slow
def test_kill_9_at_many_points_then_rerun_equals_an_uninterrupted_run(tmp_path):
    src = synthetic.generate(tmp_path / "src", seed=5, images=120, size=256)
    write_split(src, "VisDrone2019-DET-val", {"bad.jpg": jpeg(64, 64)[:200]}, {"bad": "1,1,5,5,1,1,0,0\nx\n"})
    before = tree_digest(src)
    wrapper = tmp_path / "counting_prepare.py"
    wrapper.write_text(COUNTING_PREPARE)
    cmd = [sys.executable, str(wrapper), "prepare", "visdrone", "--source", str(src), "--no-progress"]
    count = tmp_path / "count"

    def run(out: Path, kill_at: int) -> int:
        env = {**_env(), "KILL_AT": str(kill_at), "COUNT_TO": str(count)}
        return subprocess.run([*cmd, "--out", str(out)], env=env, cwd=REPO, capture_output=True).returncode

    assert run(tmp_path / "ref", 0) == 0
    reference, total = out_tree(tmp_path / "ref"), int(count.read_text())
    assert total > 2 * 120  # a label and an image per picture, then the JSON files and report
    # kill points spread over the whole run: the first operations, the middle, the last one (the report)
    for k in sorted({1, 2, total // 4, total // 2, 3 * total // 4, total - 1, total}):
        out = tmp_path / f"out{k}"
        assert run(out, k) == -signal.SIGKILL, k
        assert not (out / "report.json").exists(), k  # written last: an interrupted run never looks complete
        assert run(out, 0) == 0, k  # the same command over the partial output completes it
        assert out_tree(out) == reference, k
        assert not [p for p in out.rglob("*") if p.name.startswith(".yolo-ema-tmp")], k
    assert tree_digest(src) == before


@pytest.mark.slow
def test_ultralytics_accepts_every_prepared_label_and_image(tmp_path):
    from ultralytics.data.utils import check_det_dataset, verify_image_label

    src = synthetic.generate(tmp_path / "src", seed=2, images=12, size=320)
    write_split(src, "VisDrone2019-DET-train", {"z.jpg": b"", "t.jpg": jpeg(64, 64)[:150]}, {"z": "1,1,5,5,1,1,0,0\n"})
    out = tmp_path / "out"
    _cli("visdrone", "--source", str(src), "--out", str(out), "--no-progress")
    data = check_det_dataset(str(out / "data.yaml"))
    assert data["nc"] == 10 and data["names"][9] == "motor"
    for split in ("train", "val", "test"):
        for img in sorted((out / "images" / split).iterdir()):
            lbl = out / "labels" / split / (img.stem + ".txt")
            res = verify_image_label((str(img), str(lbl), "", False, 10, 0, 0, False))
            nm, nf, ne, nc, msg = res[5:]
            assert (nm, nc, msg) == (0, 0, ""), msg
    assert sorted(p.name for p in (out / "images/train").iterdir() if p.name[0] in "zt") == []


def test_download_flag_fetches_verifies_and_prepares(tmp_path, monkeypatch, capsys):
    import hashlib
    import zipfile

    from yolo_ema.data import catalogue

    src = synthetic.generate(tmp_path / "s", seed=7, images=5, size=128)
    remote = tmp_path / "remote"
    remote.mkdir()
    archives = []
    for folder in ("VisDrone2019-DET-train", "VisDrone2019-DET-val"):
        z = remote / f"{folder}.zip"
        with zipfile.ZipFile(z, "w") as zf:
            for p in sorted((src / folder).rglob("*")):
                zf.write(p, p.relative_to(src).as_posix())
        data = z.read_bytes()
        archives.append({"name": z.name, "url": z.as_uri(), "size": len(data), "md5": hashlib.md5(data).hexdigest()})
    entry = {**catalogue.dataset("visdrone"), "archives": archives}  # local file:// archives stand in for the network
    monkeypatch.setattr(catalogue, "dataset", lambda name, path=None: entry)
    out = tmp_path / "out"
    assert _cli("visdrone", "--download", "--out", str(out), "--no-progress") == 0
    assert sorted(p.name for p in (out / "downloads").iterdir()) == [a["name"] for a in archives]
    assert "visdrone: 5 images" in capsys.readouterr().out  # 4 train + 1 val, from the downloaded zips
    archives[0]["md5"] = "0" * 32  # a present archive that no longer verifies is refused
    assert _cli("visdrone", "--download", "--out", str(out), "--no-progress") == 1
    assert "md5" in capsys.readouterr().err
