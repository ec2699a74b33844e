"""VisDrone ignored regions: which boxes lie at least half inside them.

Implements the rule of the VisDrone2019-DET toolkit (``dropObjectsInIgr.m``): before evaluation, every ground-truth
box and every detection whose area lies >= 50% inside the image's ignored regions is removed (the toolkit keeps a box
when ``covered / (w * h) < 0.5``). The toolkit paints all regions of an image into one binary mask, so the covered
area is measured against the *union* of the regions; two half-overlapping regions are not counted twice. We compute
the same quantity exactly in continuous coordinates (coordinate compression over the region edges) instead of on the
toolkit's rounded 1-based pixel grid, so results can differ from the MATLAB code by sub-pixel rounding only.

Pure numpy; no torch or Ultralytics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Fraction of a box's own area inside ignored regions from which the box is dropped (VisDrone toolkit: >= 0.5).
DROP_FRACTION = 0.5


def _as_xyxy(boxes_xywh: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    b = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def _union_area(rects: np.ndarray) -> float:
    """Area of the union of axis-aligned rectangles ``(K, 4)`` xyxy, exactly, by coordinate compression."""
    xs = np.unique(rects[:, [0, 2]])
    ys = np.unique(rects[:, [1, 3]])
    if len(xs) < 2 or len(ys) < 2:
        return 0.0
    cx = (xs[:-1] + xs[1:]) / 2  # cell centres
    cy = (ys[:-1] + ys[1:]) / 2
    inside_x = (rects[:, 0, None] <= cx) & (cx < rects[:, 2, None])  # (K, nx)
    inside_y = (rects[:, 1, None] <= cy) & (cy < rects[:, 3, None])  # (K, ny)
    covered = (inside_x[:, :, None] & inside_y[:, None, :]).any(axis=0)  # (nx, ny)
    cell = np.diff(xs)[:, None] * np.diff(ys)[None, :]
    return float((cell * covered).sum())


def covered_fraction(boxes_xywh, regions_xywh) -> np.ndarray:
    """Fraction of each box's area that lies inside the union of ``regions``.

    Args:
        boxes_xywh: ``(N, 4)`` boxes as COCO ``[x, y, w, h]``.
        regions_xywh: ``(R, 4)`` ignored regions as ``[x, y, w, h]``.

    Returns:
        ``(N,)`` float array in [0, 1]. A zero-area box gets 1.0 if its top-left corner lies inside a region, else 0.0.
    """
    boxes = _as_xyxy(boxes_xywh)
    regions = _as_xyxy(regions_xywh)
    out = np.zeros(len(boxes), dtype=np.float64)
    if len(boxes) == 0 or len(regions) == 0:
        return out
    # Every box clipped against every region: (N, R, 4).
    x1 = np.maximum(boxes[:, None, 0], regions[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], regions[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], regions[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], regions[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)  # (N, R)
    hits = inter > 0
    n_hits = hits.sum(axis=1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in np.flatnonzero(n_hits):
        if area[i] <= 0:
            continue
        if n_hits[i] == 1:
            covered = inter[i].sum()
        else:  # overlapping regions: measure the union, not the sum
            k = hits[i]
            covered = _union_area(np.stack([x1[i, k], y1[i, k], x2[i, k], y2[i, k]], axis=1))
        out[i] = min(1.0, covered / area[i])
    degenerate = area <= 0
    if degenerate.any():
        px, py = boxes[degenerate, 0], boxes[degenerate, 1]
        inside = (
            (regions[None, :, 0] <= px[:, None])
            & (px[:, None] <= regions[None, :, 2])
            & (regions[None, :, 1] <= py[:, None])
            & (py[:, None] <= regions[None, :, 3])
        ).any(axis=1)
        out[degenerate] = inside.astype(np.float64)
    return out


def in_ignored(boxes_xywh, regions_xywh, threshold: float = DROP_FRACTION) -> np.ndarray:
    """Boolean mask of the boxes the VisDrone protocol drops: covered fraction >= ``threshold``."""
    return covered_fraction(boxes_xywh, regions_xywh) >= threshold
