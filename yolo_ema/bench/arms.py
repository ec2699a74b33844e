"""The compared models: a baseline name (``yolov8n``) and arms; arm ``X`` is the shipped config ``<baseline>-X.yaml``.

``ema`` is EMA in the neck, ``ema-paper`` the authors' placement (after the backbone blocks at stride 16 and 32,
factor 32), and any other shipped variant (``cbam``, ``c2f-ema``, ...) works the same way. The config is found by
name as ``yolo train model=yolov8n-ema.yaml`` finds it (the scale letter is Ultralytics' to resolve).

``control`` is the A/A control: the baseline's own config trained again with seeds disjoint from the baseline's
(seed ``s`` becomes ``CONTROL_SEED_OFFSET + s``), paired with baseline seed ``s``. It differs from the baseline by
training noise only, so its verdict shows the run's noise floor: a calibrated benchmark calls it "no detectable
difference" (at most 5% of the time anything else).
"""

from __future__ import annotations

import re

from yolo_ema.bench.runner import BenchmarkError

CONTROL = "control"
CONTROL_SEED_OFFSET = 1000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def unscaled(name: str) -> str:
    """``yolov8n-ema.yaml`` -> ``yolov8-ema.yaml`` (the scale letter after the version digits dropped)."""
    return re.sub(r"^(yolo(?:v\d+|\d+))[nslmxt](?=[-.])", r"\1", name)


def arm_config(model: str, arm: str) -> str:
    """The config path of ``arm`` for ``model`` (``yolov8n``, ``ema-paper`` -> ``.../cfg/yolov8n-ema-paper.yaml``).

    The path keeps the scale letter; Ultralytics reads the scale from it and the file from the unscaled name.
    """
    for what, v in (("--model", model), ("--arms", arm)):
        if not _NAME.fullmatch(v) or v.endswith((".yaml", ".pt")):
            raise BenchmarkError(f"{what} {v!r}: give a bare name such as yolov8n / ema, ema-paper, cbam")
    from yolo_ema.configs import config_dir, shipped_names

    name = f"{model}-{arm}.yaml"
    have = shipped_names()
    if name not in have and unscaled(name) not in have:
        family = unscaled(f"{model}.yaml")[: -len(".yaml")]
        mine = [h[len(family) + 1 : -len(".yaml")] for h in have if h.startswith(family + "-")]
        raise BenchmarkError(
            f"--arms {arm}: no config {name} (nor {unscaled(name)}) shipped; arms for {model}: "
            f"{', '.join(mine) or 'none'}"
        )
    return str(config_dir() / name)


def baseline_config(model: str) -> str:
    """The baseline's config: a shipped one (``yolov5-p2.yaml``) or Ultralytics' own (``yolov8n.yaml``)."""
    from yolo_ema.configs import config_dir, shipped_names

    name = f"{model}.yaml"
    if unscaled(name) in shipped_names():
        return str(config_dir() / name)
    from ultralytics.utils.checks import check_yaml

    try:
        check_yaml(unscaled(name), hard=True)
    except FileNotFoundError:
        raise BenchmarkError(f"--model {model}: no baseline config {name} in Ultralytics or yolo-ema") from None
    return name


def resolve(model: str, arms) -> dict:
    """{label: config} for the baseline and each arm, in order (``yolov8n``: ``yolov8n.yaml``, ...)."""
    arms = list(arms)
    if not arms:
        raise BenchmarkError("--arms: give at least one arm (e.g. ema)")
    if len(set(arms)) != len(arms):
        raise BenchmarkError(f"--arms has duplicates: {arms}")
    out = {model: baseline_config(model)}
    for a in arms:
        out[f"{model}-{a}"] = out[model] if a == CONTROL else arm_config(model, a)
    return out


def is_control(label: str) -> bool:
    """Whether a model label is the A/A control arm (``yolov8n-control``)."""
    return label.endswith(f"-{CONTROL}")


def run_seed(label: str, seed: int) -> int:
    """The training seed of ``label`` paired with baseline seed ``seed`` (the control's are disjoint)."""
    return CONTROL_SEED_OFFSET + seed if is_control(label) else seed


def check_seeds(seeds, arms) -> None:
    """Seeds must be distinct and, with a control arm, below the control's offset (else they could meet)."""
    if len(set(seeds)) != len(seeds):
        raise BenchmarkError(f"--seeds has duplicates: {list(seeds)}")
    if CONTROL in arms and any(not 0 <= s < CONTROL_SEED_OFFSET for s in seeds):
        raise BenchmarkError(
            f"--seeds {list(seeds)} with --arms {CONTROL}: give seeds in 0..{CONTROL_SEED_OFFSET - 1} (the control "
            f"trains with seed + {CONTROL_SEED_OFFSET}, disjoint from the baseline's)"
        )
