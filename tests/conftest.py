"""Test set-up: never let Ultralytics reach the network; small generated data for model tests."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CFG = REPO / "cfg"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it), for a server or launcher a test starts."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_tiny_yolo_dataset(root: Path, n_train: int = 8, n_val: int = 4, size: int = 64, seed: int = 0) -> Path:
    """A few images with coloured boxes and matching YOLO labels; returns the data YAML path."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            lines = []
            for _ in range(3):
                cls = int(rng.integers(0, 2))
                w, h = (int(v) for v in rng.integers(8, 20, 2))
                x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
                colour = (0, 0, 255) if cls == 0 else (0, 255, 0)
                cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), colour, -1)
                lines.append(f"{cls} {(x + w / 2) / size:.6f} {(y + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}")
            cv2.imwrite(str(root / "images" / split / f"{k:03d}.jpg"), img)
            (root / "labels" / split / f"{k:03d}.txt").write_text("\n".join(lines) + "\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: red\n  1: green\n")
    return data


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_yolo_dataset(tmp_path_factory.mktemp("tiny"))
