"""The embedded small-object data set, written in VisDrone-DET *source* format.

``generate`` writes ``OUT/VisDrone2019-DET-{train,val,test-dev}/{images/*.jpg,annotations/*.txt}`` exactly as the
official archives are laid out (rows ``left,top,width,height,score,category,truncation,occlusion``), so the real
``yolo-ema prepare visdrone`` path turns it into training data. Scenes are drone-like: textured ground, roads, blobs
of clutter, and small objects of the 10 VisDrone classes, told apart by shape and colour (most under 32 px, many under
16 px). Each image also carries VisDrone's awkward cases: ignored regions (category 0, score 0) over dense crowds,
'others' (category 11), occasional score-0 objects, and truncated boxes that cross the image border.
Deterministic: the same seed, counts and size give byte-identical files (per Pillow/numpy version).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from yolo_ema.data import fsio, layout

DEFAULT_IMAGES = 400  # the benchmark's CPU default: 300 train, 80 val, 20 test
DEFAULT_SIZE = 256
FRACTIONS = (("train", "VisDrone2019-DET-train", 0.75), ("val", "VisDrone2019-DET-val", 0.2))
TEST = ("test", "VisDrone2019-DET-test-dev")
# category -> (shape, RGB, (min, max) long side in px, aspect short/long)
CLASSES = {
    1: ("disc", (215, 45, 40), (4, 9), 1.0),  # pedestrian
    2: ("square", (245, 150, 25), (4, 9), 1.0),  # people
    3: ("bar", (40, 205, 225), (9, 16), 0.3),  # bicycle
    4: ("car", (40, 75, 215), (11, 22), 0.55),  # car
    5: ("box", (236, 236, 236), (14, 26), 0.6),  # van
    6: ("truck", (232, 210, 40), (22, 44), 0.45),  # truck
    7: ("triangle", (210, 50, 200), (7, 14), 1.0),  # tricycle
    8: ("awning", (40, 180, 60), (7, 14), 1.0),  # awning-tricycle
    9: ("bus", (125, 55, 175), (30, 60), 0.35),  # bus
    10: ("ellipse", (125, 30, 20), (6, 11), 0.5),  # motor
    11: ("diamond", (25, 25, 25), (6, 14), 1.0),  # others
}
CLASS_WEIGHTS = np.array([16, 8, 5, 22, 8, 4, 4, 3, 2, 12, 0], float)
GROUNDS = ((92, 120, 62), (118, 112, 104), (140, 118, 88), (150, 150, 145), (80, 96, 70))


def _split_counts(images: int) -> list[tuple[str, str, int]]:
    counts = [(s, f, int(round(images * fr))) for s, f, fr in FRACTIONS]
    counts.append((*TEST, max(0, images - sum(n for *_, n in counts))))
    return counts


def _background(rng: np.random.Generator, w: int, h: int):
    from PIL import Image

    noise = np.zeros((h, w), np.float32)
    for cell, weight in ((96, 0.5), (24, 0.3), (6, 0.2)):
        small = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
        up = Image.fromarray((small * 255).astype(np.uint8)).resize((w + 2 * cell, h + 2 * cell), Image.BILINEAR)
        noise += weight * np.asarray(up, np.float32)[cell : cell + h, cell : cell + w] / 255.0
    ground = np.array(GROUNDS[rng.integers(len(GROUNDS))], np.float32)
    lum = (0.7 + 0.6 * noise)[..., None]
    fine = rng.standard_normal((h, w, 1), dtype=np.float32) * 5.0
    img = lum * ground + fine
    np.clip(img, 0, 255, out=img)
    return Image.fromarray(img.astype(np.uint8))


def _jitter(rng, rgb, amount=22) -> tuple[int, int, int]:
    shade = rng.uniform(0.8, 1.1)
    noise = rng.integers(-amount, amount + 1, 3).tolist()
    return tuple(min(255, max(0, int(c * shade + n))) for c, n in zip(rgb, noise))


def _scenery(rng, draw, w: int, h: int) -> None:
    """Roads with lane marks, field patches and unlabelled clutter blobs (distractors)."""
    for _ in range(rng.integers(1, 4)):
        c = _jitter(rng, (70, 70, 72), 10)
        width = int(rng.integers(18, 46))
        if rng.random() < 0.5:
            y = int(rng.integers(0, h))
            draw.line([(0, y), (w, y + int(rng.integers(-h // 4, h // 4)))], fill=c, width=width)
        else:
            x = int(rng.integers(0, w))
            draw.line([(x, 0), (x + int(rng.integers(-w // 4, w // 4)), h)], fill=c, width=width)
    for _ in range(rng.integers(2, 6)):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        pw, ph = int(rng.integers(30, 160)), int(rng.integers(30, 160))
        draw.rectangle([x, y, x + pw, y + ph], fill=_jitter(rng, GROUNDS[rng.integers(len(GROUNDS))], 15))
    for _ in range(rng.integers(25, 60)):  # clutter: small grey/brown/dull blobs and lane-mark dashes
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        s = int(rng.integers(3, 18))
        c = _jitter(rng, (int(rng.integers(60, 200)),) * 3, 30)
        kind = rng.integers(4)
        if kind == 0:
            draw.rectangle([x, y, x + s, y + max(1, s // 4)], fill=(225, 225, 215))
        elif kind == 1:
            draw.ellipse([x, y, x + s, y + s * 0.7], fill=c)
        elif kind == 2:
            draw.line([(x, y), (x + s, y + s)], fill=c, width=2)
            draw.line([(x + s, y), (x, y + s)], fill=c, width=2)
        else:
            draw.polygon([(x, y + s), (x + s // 2, y), (x + s, y + s), (x + s // 2, y + s // 2)], fill=c)


def _draw_object(rng, draw, cat: int, x: float, y: float, bw: float, bh: float) -> None:
    shape, rgb, _, _ = CLASSES[cat]
    c = _jitter(rng, rgb)
    x2, y2 = x + bw - 1, y + bh - 1
    if shape in ("disc", "ellipse"):
        draw.ellipse([x, y, x2, y2], fill=c)
    elif shape == "square":
        draw.rectangle([x, y, x2, y2], fill=c, outline=(60, 30, 10))
    elif shape in ("bar", "box"):
        draw.rectangle([x, y, x2, y2], fill=c)
    elif shape in ("car", "truck", "bus"):
        draw.rectangle([x, y, x2, y2], fill=c)
        dark = tuple(int(v * 0.45) for v in c)
        if bw >= bh:  # cab / windscreen / windows along the long side
            if shape == "bus":
                for wx in np.arange(x + 3, x2 - 2, 6):
                    draw.rectangle([wx, y + 2, wx + 2, y + 4], fill=(230, 230, 250))
            else:
                cut = x + bw * (0.3 if shape == "truck" else 0.25)
                draw.rectangle([x, y, cut, y2], fill=dark)
        else:
            if shape == "bus":
                for wy in np.arange(y + 3, y2 - 2, 6):
                    draw.rectangle([x + 2, wy, x + 4, wy + 2], fill=(230, 230, 250))
            else:
                cut = y + bh * (0.3 if shape == "truck" else 0.25)
                draw.rectangle([x, y, x2, cut], fill=dark)
    elif shape in ("triangle", "awning"):
        draw.polygon([(x, y2), ((x + x2) / 2, y), (x2, y2)], fill=c)
        if shape == "awning":
            draw.line([(x + bw * 0.25, y + bh * 0.55), (x2 - bw * 0.25, y + bh * 0.55)], fill=(250, 250, 250), width=2)
    elif shape == "diamond":
        draw.polygon([((x + x2) / 2, y), (x2, (y + y2) / 2), ((x + x2) / 2, y2), (x, (y + y2) / 2)], fill=c)


def _crowd(rng, draw, x: int, y: int, rw: int, rh: int) -> None:
    """A dense crowd of tiny shapes: what VisDrone marks as an ignored region."""
    for _ in range(int(rw * rh / 40)):
        cx, cy = x + rng.uniform(0, rw - 3), y + rng.uniform(0, rh - 3)
        cat = int(rng.choice([1, 2, 10]))
        s = rng.uniform(2, 5)
        draw.ellipse([cx, cy, cx + s, cy + s], fill=_jitter(rng, CLASSES[cat][1]))


def _overlap(box, boxes) -> float:
    x, y, w, h = box
    worst = 0.0
    for bx, by, bw, bh in boxes:
        iw = min(x + w, bx + bw) - max(x, bx)
        ih = min(y + h, by + bh) - max(y, by)
        if iw > 0 and ih > 0:
            worst = max(worst, iw * ih / min(w * h, bw * bh))
    return worst


def render(rng: np.random.Generator, w: int, h: int, objects: tuple[int, int] = (15, 45)):
    """Draw one scene; return (PIL image, annotation rows as VisDrone-DET text)."""
    from PIL import ImageDraw

    img = _background(rng, w, h)
    draw = ImageDraw.Draw(img)
    _scenery(rng, draw, w, h)
    rows, taken = [], []
    for _ in range(rng.integers(0, 3) if rng.random() < 0.6 else 0):  # ignored regions over crowds
        rw, rh = int(rng.integers(30, 110)), int(rng.integers(24, 80))
        x, y = int(rng.integers(0, max(1, w - rw))), int(rng.integers(0, max(1, h - rh)))
        _crowd(rng, draw, x, y, rw, rh)
        rows.append(f"{x},{y},{rw},{rh},0,0,0,0")
        taken.append((x, y, rw, rh))
    n = int(rng.integers(*objects))
    cats = rng.choice(np.arange(1, 12), size=n, p=CLASS_WEIGHTS / CLASS_WEIGHTS.sum())
    cats = [11 if rng.random() < 0.04 else int(c) for c in cats]
    for cat in cats:
        _, _, (lo, hi), aspect = CLASSES[cat]
        long = rng.uniform(lo, hi)
        short = max(2.0, long * aspect * rng.uniform(0.85, 1.15))
        bw, bh = (long, short) if rng.random() < 0.5 else (short, long)
        bw, bh = int(round(bw)), int(round(bh))
        truncated = rng.random() < 0.05
        if truncated:  # let the object cross an image border (box not clipped in the annotation)
            side = rng.integers(4)
            x = -bw // 2 if side == 0 else (w - bw // 2 if side == 1 else int(rng.integers(0, w - bw)))
            y = -bh // 2 if side == 2 else (h - bh // 2 if side == 3 else int(rng.integers(0, h - bh)))
        else:
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        ov = _overlap((x, y, bw, bh), taken)
        if ov > 0.3:
            continue
        _draw_object(rng, draw, cat, x, y, bw, bh)
        taken.append((x, y, bw, bh))
        score = 0 if (cat != 11 and rng.random() < 0.015) else 1
        occlusion = 0 if ov == 0 else (1 if ov < 0.5 else 2)
        rows.append(f"{x},{y},{bw},{bh},{score},{cat},{int(truncated)},{occlusion}")
    return img, "".join(r + "\n" for r in rows)


def generate(
    out_dir: str | os.PathLike,
    seed: int = 0,
    images: int = DEFAULT_IMAGES,
    size: int | tuple[int, int] = DEFAULT_SIZE,
    objects: tuple[int, int] = (15, 45),
    quality: int = 88,
    progress: bool = False,
) -> Path:
    """Write the synthetic set (``images`` in total: 75% train, 20% val, rest test-dev) under ``out_dir``.

    ``size`` is the image side (square) or (width, height); ``objects`` the range of objects per image. Returns
    ``out_dir``, ready for ``yolo_ema.data.visdrone.prepare(out_dir, ...)``. Idempotent and crash-safe.
    """
    w, h = (size, size) if isinstance(size, int) else map(int, size)
    if images < 1 or min(w, h) < 64:
        raise ValueError(f"need images >= 1 and size >= 64 px, got images={images}, size={w}x{h}")
    out = fsio.makedirs(out_dir)
    for si, (split, folder, count) in enumerate(_split_counts(images)):
        if count == 0:
            continue
        img_dir, ann_dir = fsio.makedirs(out / folder / "images"), fsio.makedirs(out / folder / "annotations")
        fsio.remove_temps(img_dir)
        fsio.remove_temps(ann_dir)
        for i in layout.progress(range(count), count, f"synthetic {split}", progress):
            rng = np.random.default_rng([seed, si, i])
            img, text = render(rng, w, h, objects)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=quality)
            stem = f"syn{seed}_{split}_{i:05d}"
            fsio.write_text(ann_dir / f"{stem}.txt", text, sync=False)
            fsio.write_bytes(img_dir / f"{stem}.jpg", buf.getvalue(), sync=False)
    meta = {"generator": "yolo_ema.data.synthetic", "seed": seed, "images": images, "size": [w, h]}
    meta["objects"] = list(objects)
    meta["splits"] = {s: n for s, _, n in _split_counts(images)}
    fsio.write_text(out / "synthetic.json", json.dumps(meta, indent=1) + "\n")
    return out
