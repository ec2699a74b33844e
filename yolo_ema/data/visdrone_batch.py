"""Parse and convert all annotation files of a split at once with numpy; same results as visdrone_format, row by row.

Files that are plain VisDrone-DET text (numbers, commas, newlines, 8 fields a row; optional trailing comma, CRLF) are
parsed in one vectorised pass; any other file goes through ``visdrone_format.parse``, the reference, so errors keep
their exact ``file:line: reason``. Validation (width/height > 0, category 0..11) and conversion (clip to the image,
category c -> class c-1, ignore regions) are vectorised over the whole split.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from yolo_ema.data.visdrone_format import _num, parse

_ALLOWED = b"0123456789,-.\n"


class Split(NamedTuple):
    values: np.ndarray  # (R, 8) float64 rows: left, top, width, height, score, category, truncation, occlusion
    file: np.ndarray  # (R,) index of the file each row came from
    line: np.ndarray  # (R,) 1-based line number
    errors: list  # "name:line: reason" for rows that are not well formed


def _normalise(data: bytes) -> bytes:
    """CRLF -> LF, no trailing newlines, no optional trailing comma; blank lines stay (and then fail the fast path)."""
    data = data.replace(b"\r\n", b"\n").rstrip(b"\n")
    if data.endswith(b","):
        data = data[:-1]
    return data.replace(b",\n", b"\n")


def _fast(chunks: list[bytes]) -> np.ndarray | None:
    """Parse already-normalised chunks joined by newlines; None unless every line is 8 plain finite numbers."""
    big = b"\n".join(chunks)
    if not big or big.translate(None, _ALLOWED):
        return None
    buf = np.frombuffer(big, np.uint8)
    newline = buf == 10
    n_lines = int(newline.sum()) + 1
    line_of = np.cumsum(newline)
    commas = np.bincount(line_of[buf == 44], minlength=n_lines)
    if commas.shape[0] != n_lines or not (commas == 7).all():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            vals = np.fromstring(big.replace(b"\n", b",").decode("ascii"), dtype=np.float64, sep=",")
        except (DeprecationWarning, ValueError):
            return None
    if vals.shape[0] != 8 * n_lines or not np.isfinite(vals).all():
        return None
    return vals.reshape(n_lines, 8)


def parse_split(datas: list[bytes | None], names: list[str]) -> Split:
    """Parse every file (None = no annotation file); rows keep file order, then line order."""
    norm = [_normalise(d) if d else b"" for d in datas]
    todo = [i for i, d in enumerate(norm) if d]
    parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    errors: dict[int, list] = {}  # file -> [(line, message)]
    whole = _fast([norm[i] for i in todo]) if todo else None
    if whole is not None:
        start = 0
        for i in todo:
            n = norm[i].count(b"\n") + 1
            parts[i] = (whole[start : start + n], np.arange(1, n + 1))
            start += n
    else:
        for i in todo:
            arr = _fast([norm[i]])
            if arr is not None:
                parts[i] = (arr, np.arange(1, arr.shape[0] + 1))
                continue
            rows, errs = parse(datas[i], names[i])
            cut = len(names[i]) + 1
            errors[i] = [(int(e[cut:].partition(":")[0]), e) for e in errs]
            if rows:
                a = np.array([r[:8] for r in rows], np.float64)
                parts[i] = (a, np.array([r.line for r in rows]))
    if not parts:
        return Split(np.zeros((0, 8)), np.zeros(0, np.int64), np.zeros(0, np.int64), _flat(errors))
    order = sorted(parts)
    values = np.concatenate([parts[i][0] for i in order])
    line = np.concatenate([parts[i][1] for i in order])
    file = np.repeat(order, [parts[i][0].shape[0] for i in order])
    w, h, cat = values[:, 2], values[:, 3], values[:, 5]
    bad_size = (w <= 0) | (h <= 0)
    bad_cat = ~bad_size & ~((cat >= 0) & (cat <= 11) & (cat == np.floor(cat)))
    bad = bad_size | bad_cat
    for j in np.flatnonzero(bad).tolist():
        f, ln = int(file[j]), int(line[j])
        if bad_size[j]:
            msg = f"width and height must be > 0, got {_num(float(w[j]))}x{_num(float(h[j]))}"
        else:
            msg = f"category must be an integer 0..11, got {_num(float(cat[j]))}"
        errors.setdefault(f, []).append((ln, f"{names[f]}:{ln}: {msg}"))
    keep = ~bad
    return Split(values[keep], file[keep], line[keep], _flat(errors))


def _flat(errors: dict) -> list:
    return [msg for f in sorted(errors) for _, msg in sorted(errors[f])]


class Converted(NamedTuple):
    labels: list  # per file: YOLO label text
    boxes: dict  # column arrays of kept boxes: file, category, x, y, w, h, truncation, occlusion
    ignores: dict  # column arrays of ignore regions: file, category, x, y, w, h, source (0 region, 1 others, 2 score0)
    clipped: int
    errors: list  # rows whose box lies outside the image


SOURCES = ("ignored_region", "others", "score0")
_LABEL = "%d %.6f %.6f %.6f %.6f\n"


def convert_split(sp: Split, widths: np.ndarray, heights: np.ndarray, names: list[str]) -> Converted:
    """Clip every row to its image; split into YOLO boxes and ignore regions (see visdrone_format.convert)."""
    v = sp.values
    W = widths[sp.file].astype(np.float64)
    H = heights[sp.file].astype(np.float64)
    x1 = np.maximum(v[:, 0], 0.0)
    y1 = np.maximum(v[:, 1], 0.0)
    x2 = np.minimum(v[:, 0] + v[:, 2], W)
    y2 = np.minimum(v[:, 1] + v[:, 3], H)
    bw, bh = x2 - x1, y2 - y1
    cut = (v[:, 0] < 0) | (v[:, 1] < 0) | (v[:, 0] + v[:, 2] > W) | (v[:, 1] + v[:, 3] > H)
    outside = (bw <= 0) | (bh <= 0)
    errors = [
        f"{names[f]}:{ln}: box lies outside the {int(widths[f])}x{int(heights[f])} image"
        for f, ln in zip(sp.file[outside].tolist(), sp.line[outside].tolist())
    ]
    cat = v[:, 5]
    src = np.where(cat == 0, 0, np.where(cat == 11, 1, np.where(v[:, 4] == 0, 2, -1)))
    ign = ~outside & (src >= 0)
    kept = ~outside & (src < 0)
    dw, dh = 1.0 / W[kept], 1.0 / H[kept]
    kx, ky, kw, kh = x1[kept], y1[kept], bw[kept], bh[kept]
    # one % per file with a repeated format: same text as f"{c} {x:.6f} ...", without per-row Python overhead
    table = np.column_stack([cat[kept] - 1, (kx + kw / 2) * dw, (ky + kh / 2) * dh, kw * dw, kh * dh])
    flat = table.ravel().tolist()
    kfile = sp.file[kept]
    labels = [""] * len(widths)
    if flat:
        bounds = (np.flatnonzero(np.diff(kfile)) + 1).tolist()
        for s, e in zip([0, *bounds], [*bounds, len(kfile)]):
            labels[int(kfile[s])] = (_LABEL * (e - s)) % tuple(flat[5 * s : 5 * e])
    boxes = {"file": kfile, "category": cat[kept], "x": kx, "y": ky, "w": kw, "h": kh}
    boxes.update(truncation=v[kept, 6], occlusion=v[kept, 7])
    ignores = {"file": sp.file[ign], "category": cat[ign], "x": x1[ign], "y": y1[ign], "w": bw[ign], "h": bh[ign]}
    ignores["source"] = src[ign]
    return Converted(labels, boxes, ignores, int((cut & kept).sum()), errors)


def json_numbers(a: np.ndarray) -> list:
    """Column as JSON-ready Python numbers: ints where integral (as json.dumps would print 3 for 3.0 -> 3)."""
    if a.size == 0:
        return []
    if (a == np.floor(a)).all() and np.abs(a).max() < 2**53:
        return a.astype(np.int64).tolist()
    return [int(x) if x.is_integer() else x for x in a.tolist()]
