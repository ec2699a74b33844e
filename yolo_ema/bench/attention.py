"""What EMA does, as a picture: its spatial attention maps over validation images, beside both models' detections.

An EMA layer (Ouyang et al., ICASSP 2023, arXiv:2305.13563, Fig. 3) splits the channels into G groups and multiplies
each group by one spatial map, ``sigmoid(s1 @ x2 + s2 @ x1)`` (H x W): the cross-spatial weights of the 1x1 branch
``x1`` and the 3x3 branch ``x2``. :func:`yolo_ema.nn.ema_paper.attention_map` recomputes that map from the layer's own
parameters on the input a forward hook caught (the paper's equations), and the picture averages it over the groups. The picture shows, for a few images, the image with the baseline's detections, the image with the
EMA model's detections, and the image under each EMA layer's map (upsampled to the image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yolo_ema.bench.plot import save_png


def maps(model, image) -> list:
    """Group-averaged spatial maps [H_l, W_l] (numpy) of every EMA layer of ``model`` on one letterboxed image.

    ``model``: a DetectionModel in eval mode; ``image``: float tensor [1, 3, H, W] in [0, 1].
    """
    import torch

    from yolo_ema.bench.cost import ema_inputs
    from yolo_ema.nn.ema_paper import attention_map

    layers, inputs = ema_inputs(model, image)
    with torch.inference_mode():
        return [attention_map(lay, x.float())[0].mean(0).numpy() for lay, x in zip(layers, inputs)]


def _letterbox(path: Path, imgsz: int) -> np.ndarray:
    """The image as RGB uint8 [S, S, 3], letterboxed by Ultralytics' LetterBox (the one letterbox: parity.squared)."""
    import cv2

    from yolo_ema.export.parity import squared

    bgr = cv2.imread(str(path))
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return np.ascontiguousarray(squared(bgr, imgsz)[..., ::-1])


def _boxes(yolo, rgb: np.ndarray, conf: float) -> np.ndarray:
    """[N, 4] xyxy detections of an Ultralytics ``YOLO`` on an RGB image (above ``conf``)."""
    res = yolo.predict(rgb[..., ::-1].copy(), imgsz=rgb.shape[0], conf=conf, verbose=False, device="cpu")[0]
    return res.boxes.xyxy.cpu().numpy()


def picture(baseline, arm, images: list[Path], path: Path, imgsz: int, labels=("baseline", "EMA"), conf=0.25) -> Path:
    """Draw ``images`` (rows): baseline detections | arm detections | each EMA layer's map over the image.

    ``baseline`` and ``arm``: weights paths; the arm must hold EMA layers. Written atomically as PNG to ``path``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import torch
    from ultralytics import YOLO

    yb, ya = YOLO(str(baseline)), YOLO(str(arm))
    net = ya.model.float().eval()
    rows = []
    for p in images:
        rgb = _letterbox(p, imgsz)
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255  # (1, 3, S, S)
        rows.append((p, rgb, _boxes(yb, rgb, conf), _boxes(ya, rgb, conf), maps(net, x)))
    n_maps = len(rows[0][4]) if rows else 0
    if not n_maps:
        raise ValueError(f"{arm}: no EMA layer in this model, nothing to draw")
    cols = 2 + n_maps
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.6 * cols, 2.6 * len(rows)), dpi=100, squeeze=False)
    for r, (p, rgb, bb, ba, ms) in enumerate(rows):
        for c, (boxes, name) in enumerate(((bb, labels[0]), (ba, labels[1]))):
            ax = axes[r, c]
            ax.imshow(rgb)
            for x1, y1, x2, y2 in boxes:
                ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=0.8, ec="#00ff66"))
            ax.set_title(f"{name}: {len(boxes)} boxes", fontsize=8)
        for j, m in enumerate(ms):
            ax = axes[r, 2 + j]
            ax.imshow(rgb)
            stride = imgsz // m.shape[0]
            ax.imshow(m, cmap="magma", alpha=0.55, extent=(0, imgsz, imgsz, 0), interpolation="bilinear")
            ax.set_title(f"EMA map {j + 1} (stride {stride}): {m.min():.2f}–{m.max():.2f}", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(p.name, fontsize=7)
    fig.suptitle(
        f"Detections (conf >= {conf}) and EMA spatial attention (mean over groups; each map's own range, "
        "bright = kept more)",
        fontsize=9,
    )
    fig.tight_layout()
    return save_png(fig, path)
