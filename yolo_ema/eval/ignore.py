"""VisDrone ignored regions: which boxes the DET toolkit drops, on its own integer pixel grid.

The rule of ``utils/dropObjectsInIgr.m`` (github.com/VisDrone/VisDrone2018-DET-toolkit), reproduced exactly, not
approximated by continuous geometry (the two differ by whole pixels: the toolkit's regions reach one pixel further
left and up than their boxes, and boxes are rounded):

* regions (category 0 only) become ``max(1, [x y w h])`` and paint rows ``y .. min(H, y+h)`` and columns
  ``x .. min(W, x+w)`` (1-based, both ends inclusive) of an ``H x W`` mask;
* a box becomes ``pos = max(1, round([x y w h]))`` (MATLAB ``round``: halves away from zero), its corner
  ``x = clamp(pos_x, 1, W)``, ``y = clamp(pos_y, 1, H)``; with the integral image ``I`` of the mask
  (``createIntImg.m``), ``covered = I(y, x) + I(y2, x2) - I(y, x2) - I(y2, x)`` where ``x2 = min(W, x+w)`` and
  ``y2 = max(1, min(H, y+h))``, i.e. the painted pixels in rows ``y+1 .. y2`` and columns ``x+1 .. x2``;
* the box is kept when ``covered / (w * h) < 0.5``.

Instead of painting a full image we compress the grid to the region edges (the mask is constant between them) and
count pixels per compressed cell, which gives the same integers. Region coordinates are integers in VisDrone files;
non-integer ones (where MATLAB indexing would fail) are rounded. Pure numpy; no torch or Ultralytics.
"""

from __future__ import annotations

import numpy as np

#: Fraction of a box's (rounded) area inside ignored regions from which the box is dropped (toolkit: >= 0.5).
DROP_FRACTION = 0.5


def matlab_round(v: np.ndarray) -> np.ndarray:
    """MATLAB ``round``: halves away from zero (numpy's ``round`` goes to even)."""
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _cells(starts: np.ndarray, ends: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """Compressed 1-based cells ``[lo, hi]`` covering ``1..size`` split at every region start and end + 1."""
    edges = np.unique(np.concatenate([[1.0, size + 1], starts, ends + 1]))
    edges = edges[(edges >= 1) & (edges <= size + 1)]
    return edges[:-1], edges[1:] - 1  # (K,), (K,)


def _overlap(lo: np.ndarray, hi: np.ndarray, c_lo: np.ndarray, c_hi: np.ndarray) -> np.ndarray:
    """(N, K) pixels shared by the ranges ``[lo, hi]`` (N,) and the cells ``[c_lo, c_hi]`` (K,)."""
    return np.clip(np.minimum(hi[:, None], c_hi[None, :]) - np.maximum(lo[:, None], c_lo[None, :]) + 1, 0, None)


def covered_fraction(boxes_xywh, regions_xywh, width: float, height: float) -> np.ndarray:
    """``igrVal / (h*w)`` of ``dropObjectsInIgr.m`` for each box: covered mask pixels over its rounded area.

    Args:
        boxes_xywh: ``(N, 4)`` boxes ``[x, y, w, h]`` (objects or detections).
        regions_xywh: ``(R, 4)`` ignored regions ``[x, y, w, h]`` of the same image.
        width, height: the image size ``W``, ``H`` in pixels.

    Returns:
        ``(N,)`` float array (0 where there are no regions).
    """
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    reg = np.asarray(regions_xywh, dtype=np.float64).reshape(-1, 4)
    out = np.zeros(len(boxes))
    if not len(boxes) or not len(reg):
        return out
    W, H = float(width), float(height)
    reg = matlab_round(np.maximum(1.0, reg))  # igrRegion = max(1, gt(idxIgr, 1:4))
    r_x0, r_y0 = reg[:, 0], reg[:, 1]
    r_x1, r_y1 = np.minimum(W, reg[:, 0] + reg[:, 2]), np.minimum(H, reg[:, 1] + reg[:, 3])  # inclusive ends
    col_lo, col_hi = _cells(r_x0, r_x1, W)
    row_lo, row_hi = _cells(r_y0, r_y1, H)
    # Cell (row k, col l) is painted when one region spans it (cells never straddle a region edge).
    in_rows = (r_y0[:, None] <= row_lo[None, :]) & (row_hi[None, :] <= r_y1[:, None])  # (R, K)
    in_cols = (r_x0[:, None] <= col_lo[None, :]) & (col_hi[None, :] <= r_x1[:, None])  # (R, L)
    mask = (in_rows.astype(np.float64).T @ in_cols.astype(np.float64)) > 0  # (K, L)

    pos = np.maximum(1.0, matlab_round(boxes))  # pos = max(1, round(curgt(i, 1:4)))
    x, y = np.clip(pos[:, 0], 1, W), np.clip(pos[:, 1], 1, H)
    w, h = pos[:, 2], pos[:, 3]
    x2, y2 = np.minimum(W, x + w), np.clip(y + h, 1, H)
    rows = _overlap(y + 1, y2, row_lo, row_hi)  # (N, K)
    cols = _overlap(x + 1, x2, col_lo, col_hi)  # (N, L)
    covered = np.einsum("nk,kl,nl->n", rows, mask.astype(np.float64), cols)
    return covered / (h * w)


def kept_by_regions(boxes_xywh, regions_xywh, width: float, height: float) -> np.ndarray:
    """``(N,)`` bool: the boxes ``dropObjectsInIgr.m`` keeps (``igrVal / (h*w) < 0.5``)."""
    return covered_fraction(boxes_xywh, regions_xywh, width, height) < DROP_FRACTION


def in_ignored(boxes_xywh, regions_xywh, width: float, height: float) -> np.ndarray:
    """``(N,)`` bool: the boxes the toolkit drops (the complement of :func:`kept_by_regions`)."""
    return ~kept_by_regions(boxes_xywh, regions_xywh, width, height)
