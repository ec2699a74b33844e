"""scripts/gpu_check.sh: its CPU dry run runs every step and writes what a GPU run would (parity, training, speed,
benchmark; the TensorRT step is skipped on the CPU); bad arguments are refused with the usage line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
ENV = {**os.environ, "PYTHON": sys.executable, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize("args", [[], ["--cpu-dry-run"], ["out", "--fast"]])
def test_bad_arguments_print_usage(args, tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert r.returncode == 2 and ("usage:" in r.stderr or "unknown option" in r.stderr), r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_cpu_dry_run_runs_every_step(tmp_path):
    out = tmp_path / "gpu check"  # a space in the path on purpose
    r = subprocess.run(["bash", str(SCRIPT), str(out), "--cpu-dry-run"], capture_output=True, text=True, env=ENV,
                       timeout=1500)  # fmt: skip
    logs = {p.name: p.read_text()[-1500:] for p in out.glob("*.log")}
    assert r.returncode == 0, (r.stdout, r.stderr[-2000:], logs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cpu_dry_run"] is True
    steps = {s["step"]: s for s in summary["steps"]}
    assert set(steps) == {"parity", "train", "speed", "benchmark", "engine"}
    assert all(steps[k]["rc"] == 0 for k in ("parity", "train", "speed", "benchmark"))
    assert steps["engine"]["skipped"] == "cpu dry run"

    parity = json.loads((out / "parity.json").read_text())
    assert parity["ok"] and len(parity["rows"]) == 5  # fp32, fp16, bf16, fp16 and bf16 under autocast
    for row in parity["rows"]:
        assert row["ours"]["forward"] <= 2 * row["paper"]["forward"] + 1e-5
    train = json.loads((out / "train.json").read_text())
    assert train["epochs"] == 2 and train["losses_finite"]
    rows = json.loads((out / "speed.json").read_text())["rows"]
    assert {r["runtime"] for r in rows} == {"eager"}
    assert all(r["ours"]["lo"] <= r["ours"]["ratio"] <= r["ours"]["hi"] for r in rows)
    assert (out / "benchmark_report.md").read_text().startswith("#")
