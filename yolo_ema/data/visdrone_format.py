"""Parse VisDrone-DET annotation files and turn their rows into YOLO lines and COCO entries.

VisDrone2019-DET annotation format (one object per line, comma separated, pixel units, origin top-left):
    <bbox_left>,<bbox_top>,<bbox_width>,<bbox_height>,<score>,<object_category>,<truncation>,<occlusion>
score: 1 = evaluated, 0 = not evaluated (ignored) in ground truth. Categories: 0 ignored region, 1 pedestrian,
2 people, 3 bicycle, 4 car, 5 van, 6 truck, 7 tricycle, 8 awning-tricycle, 9 bus, 10 motor, 11 others.
truncation: 0 none, 1 partial (1%-50%); occlusion: 0 none, 1 partial (1%-50%), 2 heavy (50%-100%).
Some official files end rows with a trailing comma; that empty 9th field is accepted.
"""

from __future__ import annotations

from math import isfinite
from typing import NamedTuple

FIELDS = ("left", "top", "width", "height", "score", "category", "truncation", "occlusion")
IGNORED_REGION, OTHERS = 0, 11
_REGION_SOURCES = {IGNORED_REGION: "ignored_region", OTHERS: "others"}


def ignore_source(category: int, score) -> str | None:
    """Where a row goes for evaluation: "ignored_region" (category 0), "others" (11) or "score0" (score 0) are
    ignore regions, kept out of training; None: a box (category c is YOLO class c - 1)."""
    return _REGION_SOURCES.get(category) or ("score0" if score == 0 else None)


class Row(NamedTuple):
    """One well-formed annotation row (``line`` is 1-based); values are ints where the file has integers."""

    left: float
    top: float
    width: float
    height: float
    score: float
    category: int
    truncation: float
    occlusion: float
    line: int


def _num(v: float) -> int | float:
    return int(v) if v == int(v) else v


def _why_not_numeric(parts: list[str]) -> str:
    for name, p in zip(FIELDS, parts):
        try:
            v = float(p)
        except ValueError:
            return f"field {name} is not a number: {p.strip()[:40]!r}"
        if not isfinite(v):
            return f"field {name} is not finite: {p.strip()[:40]!r}"
    return "non-numeric field"


def parse(data: bytes | str, name: str) -> tuple[list[Row], list[str]]:
    """Parse one annotation file; return (good rows, errors as ``"name:line: reason"``). Never raises.

    Blank lines are skipped silently. A row is rejected (and reported) if it has the wrong number of fields, a field
    that is not a finite number, width or height <= 0, or a category that is not an integer in 0..11.
    """
    if isinstance(data, bytes):
        text = data.decode("utf-8", errors="replace")
    else:
        text = data
    if text.startswith("\ufeff"):
        text = text[1:]
    rows: list[Row] = []
    errors: list[str] = []
    for i, line in enumerate(text.split("\n"), 1):
        parts = line.split(",")
        n = len(parts)
        if n != 8:
            if n == 9 and not parts[8].strip():
                del parts[8]
            elif n == 1 and not line.strip():
                continue
            else:
                errors.append(f"{name}:{i}: expected 8 comma-separated fields, got {n}")
                continue
        try:
            vals = list(map(int, parts))  # VisDrone's values are integers: they stay ints (exact, and so in the JSON)
        except ValueError:
            try:
                vals = list(map(float, parts))
            except ValueError:
                errors.append(f"{name}:{i}: {_why_not_numeric(parts)}")
                continue
            if not all(map(isfinite, vals)):
                errors.append(f"{name}:{i}: {_why_not_numeric(parts)}")
                continue
        left, top, w, h, score, cat, trunc, occ = vals
        if w <= 0 or h <= 0:
            errors.append(f"{name}:{i}: width and height must be > 0, got {_num(w)}x{_num(h)}")
            continue
        if not (0 <= cat <= 11 and cat == int(cat)):
            errors.append(f"{name}:{i}: category must be an integer 0..11, got {_num(cat)}")
            continue
        rows.append(Row(left, top, w, h, score, int(cat), trunc, occ, i))
    return rows, errors


class Converted(NamedTuple):
    labels: str  # YOLO label file content
    boxes: list  # [(category_id, [x, y, w, h], truncation, occlusion)] kept for training and evaluation
    ignores: list  # [([x, y, w, h], source, category)] ignore regions for evaluation only
    clipped: int  # kept boxes clipped to the image
    errors: list  # rows whose box lies entirely outside the image


def convert(rows: list[Row], width: int, height: int, name: str) -> Converted:
    """Clip rows to the image and split them into YOLO boxes (category c -> class c-1) and ignore regions.

    Ignore regions: category 0 ("ignored_region"), category 11 ("others") and objects with score 0 ("score0").
    Boxes keep integer coordinates where the rows have them (clipping to the image border keeps them integral).
    """
    dw, dh = 1.0 / width, 1.0 / height
    lines, boxes, ignores, errors = [], [], [], []
    clipped = 0
    for r in rows:
        x1, y1, x2, y2 = r.left, r.top, r.left + r.width, r.top + r.height
        cut = False
        if x1 < 0:
            x1, cut = 0, True
        if y1 < 0:
            y1, cut = 0, True
        if x2 > width:
            x2, cut = width, True
        if y2 > height:
            y2, cut = height, True
        bw, bh = x2 - x1, y2 - y1
        if bw <= 0 or bh <= 0:
            errors.append(f"{name}:{r.line}: box lies outside the {width}x{height} image")
            continue
        box = [x1, y1, bw, bh]
        cat = r.category
        source = ignore_source(cat, r.score)
        if source:
            ignores.append((box, source, cat))
        else:
            clipped += cut
            lines.append(f"{cat - 1} {(x1 + bw / 2) * dw:.6f} {(y1 + bh / 2) * dh:.6f} {bw * dw:.6f} {bh * dh:.6f}\n")
            boxes.append((cat, box, r.truncation, r.occlusion))
    return Converted("".join(lines), boxes, ignores, clipped, errors)
