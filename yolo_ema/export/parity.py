"""Parity of an exported model with its PyTorch weights, on real images.

Two checks per (image size, batch) pair the export accepts:

1. **Raw head**: the same letterboxed float32 batch goes through the fused PyTorch model (what ``YOLO.predict``
   runs) and the exported model; we compare Detect's ``output0`` (B, 4+nc, anchors), each part against its full
   scale. Class rows are probabilities (full scale 1): ``|d score| <= tol``. Box rows are pixels decoded from the DFL
   expectation over 16 bins of ``stride`` pixels, so a box coordinate's full scale at an anchor is ``16 * stride``
   px: ``|d box| / (16 * stride) <= tol`` (a plain relative error is meaningless for coordinates near 0, and the
   image size is not the scale the network predicts in). Default ``tol`` 2e-4 for FP32: both sides compute the same
   FP32 math in a different order (fused BatchNorm, onnxruntime/OpenVINO kernels, the EMA layer's functional export
   branch vs. its in-place eager branch). Scores agree to ~1e-6; box distances come out of a softmax over trained
   logits of large magnitude, which amplifies a 1e-6 relative logit difference: measured on a trained yolov8n-ema
   with onnxruntime (graph optimizations on or off alike), up to 8e-5 of full scale (0.04 px, P5 anchors, 320 px
   input), TorchScript ~1e-5, so 2e-4 keeps a margin over the 1e-4 of FP32 noise while a wrong weight, a baked-in
   shape or a missing operator gives 1e-2 and more. FP16 artifacts (unit roundoff 4.9e-4) get 5e-2.
2. **Detections after NMS**: ``YOLO(weights).predict`` and ``YOLO(export).predict`` (Ultralytics' own pre- and
   post-processing) on the same images, same ``imgsz``, ``conf`` and ``iou``. Boxes are matched one to one within
   ``px_tol`` pixels (max coordinate difference) and the same class. A box whose score lies within ``margin`` of
   ``conf`` may legitimately appear on one side only (a 1e-6 score change moves it across the threshold); such
   boxes are counted as *near* and do not fail the check, as are NMS ties (two overlapping same-class boxes whose
   scores differ by less than ``margin``: either may survive). Every other box must match.

Images are squared to ``imgsz`` with Ultralytics' letterbox first, so both sides see the very same pixels whatever
their own letterbox rule (static exports pad to the full square, dynamic ones to a stride multiple).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RAW_TOL = {"fp32": 2e-4, "fp16": 5e-2}
MARGIN = {"fp32": 1e-3, "fp16": 2e-2}
IMG_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class ParityError(AssertionError):
    """The exported model disagrees with PyTorch beyond tolerance; the message lists every failing check."""


# --- inputs -------------------------------------------------------------------------------------------------------------


def synthetic_images(n: int = 4, size: int = 192, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Generated BGR scenes: textured ground with a dozen filled rectangles and discs (not blank tensors)."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        img = cv2.GaussianBlur(rng.integers(40, 160, (size, size, 3), dtype=np.uint8), (5, 5), 0)
        for _ in range(12):
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            x, y = (int(v) for v in rng.integers(0, size - 8, 2))
            w, h = (int(v) for v in rng.integers(6, max(7, size // 5), 2))
            if rng.random() < 0.5:
                cv2.rectangle(img, (x, y), (min(size - 1, x + w), min(size - 1, y + h)), colour, -1)
            else:
                cv2.circle(img, (x, y), max(3, w // 2), colour, -1)
        out.append((f"synthetic_{k}", img))
    return out


def _image_files(root: Path) -> list[Path]:
    if root.is_file() and root.suffix.lower() == ".txt":  # Ultralytics image-list file
        return [Path(line.strip()) for line in root.read_text().splitlines() if line.strip()]
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMG_SUFFIXES)


def val_image_dirs(data: str | Path) -> list[Path]:
    """The validation image folders/files named by a YOLO data YAML (``path`` + ``val``)."""
    import yaml

    data = Path(data)
    cfg = yaml.safe_load(data.read_text())
    if not isinstance(cfg, dict) or "val" not in cfg:
        raise ValueError(f"{data}: not a YOLO data YAML with a 'val' entry")
    base = Path(cfg.get("path") or data.parent)
    if not base.is_absolute():
        base = (data.parent / base).resolve()
    vals = cfg["val"] if isinstance(cfg["val"], list) else [cfg["val"]]
    return [p if p.is_absolute() else base / p for p in map(Path, vals)]


def load_images(
    data: str | Path | None = None, images: str | Path | None = None, n: int = 4
) -> list[tuple[str, np.ndarray]]:
    """``n`` BGR images: the first of ``images`` (folder/file), else of ``data``'s val split, else generated ones."""
    import cv2

    if images is None and data is None:
        return synthetic_images(n)
    roots = [Path(images)] if images is not None else val_image_dirs(data)
    files = [f for r in roots if r.exists() for f in _image_files(r)]
    if not files:
        raise FileNotFoundError(f"no images found in {', '.join(map(str, roots))}")
    out = []
    for f in files[:n]:
        img = cv2.imread(str(f))
        if img is None:
            raise ValueError(f"cannot read image {f}")
        out.append((f.name, img))
    while len(out) < n:  # fewer images than asked: reuse them (parity needs full batches)
        out.append(out[len(out) % len(files)])
    return out


def squared(img: np.ndarray, imgsz: int) -> np.ndarray:
    """Letterbox ``img`` to exactly ``imgsz`` x ``imgsz`` (Ultralytics' LetterBox, grey padding)."""
    from ultralytics.data.augment import LetterBox

    return LetterBox(new_shape=(imgsz, imgsz), auto=False)(image=img)


def to_input(imgs: list[np.ndarray]) -> np.ndarray:
    """BGR uint8 HWC images -> float32 RGB (B, 3, H, W) in [0, 1], as Ultralytics' predictor preprocesses."""
    x = np.stack([im[..., ::-1].transpose(2, 0, 1) for im in imgs])
    return np.ascontiguousarray(x, dtype=np.float32) / 255.0


# --- checks ---------------------------------------------------------------------------------------------------------------


@dataclass
class Dets:
    """One image's detections: xyxy (n, 4) pixels, scores (n,), classes (n,)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray


@dataclass
class Match:
    """Outcome of matching the detections of one side against the other."""

    n_ref: int = 0
    n_exp: int = 0
    matched: int = 0
    max_px: float = 0.0
    class_mismatch: int = 0
    near: int = 0
    problems: list[str] = field(default_factory=list)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy ``box`` (4,) with each of ``boxes`` (n, 4): (n,)."""
    lt, rb = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(1)
    area = lambda b: np.clip(b[..., 2:] - b[..., :2], 0, None).prod(-1)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def _tied(box, score, cls, other: Dets, other_raw: Dets | None, margin: float, iou: float, px_tol: float) -> bool:
    """An NMS tie: the other side's *pre-NMS* output holds this box (within ``px_tol``, same class, score within
    ``margin``), and the other side kept instead an overlapping (IoU > ``iou``) same-class box scoring within
    ``margin``, so a sub-tolerance score difference decided which one NMS kept. Needs ``other_raw``."""
    if other_raw is None or not len(other.scores) or not len(other_raw.scores):
        return False
    same = (other_raw.classes == cls) & (np.abs(other_raw.scores - score) <= margin)
    if not (same & (np.abs(other_raw.boxes - box).max(1) <= px_tol)).any():
        return False
    rival = (other.classes == cls) & (np.abs(other.scores - score) <= margin)
    return bool((rival & (box_iou(box, other.boxes) > iou)).any())


def raw_dets(out: np.ndarray, imgsz: int) -> Dets:
    """Pre-NMS candidates of one image from Detect's output (4+nc, A): xyxy clipped to the image, top class."""
    xy, wh = out[:2].T, out[2:4].T
    boxes = np.clip(np.concatenate([xy - wh / 2, xy + wh / 2], 1), 0, imgsz)
    return Dets(boxes, out[4:].max(0), out[4:].argmax(0))


def _unmatched_exports(m: Match, exp: Dets, ref: Dets, ref_raw, used, sure, margin, iou, px_tol, where) -> None:
    """Export boxes left unmatched: near (below ``sure`` or an NMS tie), else a problem recorded in ``m``."""
    for j in np.flatnonzero(~used):
        if exp.scores[j] < sure or _tied(
            exp.boxes[j], exp.scores[j], exp.classes[j], ref, ref_raw, margin, iou, px_tol
        ):
            m.near += 1
        else:
            m.problems.append(
                f"{where}export box {np.round(exp.boxes[j], 1).tolist()} (class {int(exp.classes[j])}, "
                f"score {exp.scores[j]:.3f}) has no PyTorch match"
            )


def match_detections(
    ref: Dets,
    exp: Dets,
    conf: float,
    margin: float,
    px_tol: float,
    iou: float = 0.7,
    where: str = "",
    ref_raw: Dets | None = None,
    exp_raw: Dets | None = None,
) -> Match:
    """Match ``exp`` boxes to ``ref`` boxes one to one (same class, max coordinate difference <= ``px_tol``).

    Unmatched boxes scoring below ``conf + margin`` are *near* (threshold crossings or a flipped top class between
    near-equal class scores), as are unmatched boxes that the other side replaced by an overlapping same-class box
    (IoU > ``iou``) scoring within ``margin`` although its own pre-NMS output (``ref_raw``/``exp_raw``) holds the
    box: an NMS tie, where a sub-tolerance score difference picked the survivor.
    Any other unmatched box, and any confident box whose only geometric match has another class, is a problem.
    """
    m = Match(n_ref=len(ref.scores), n_exp=len(exp.scores))
    used = np.zeros(len(exp.scores), bool)
    sure = conf + margin
    for i in np.argsort(-ref.scores):
        d = np.abs(exp.boxes - ref.boxes[i]).max(1) if len(exp.scores) else np.zeros(0)
        close = (d <= px_tol) & ~used
        same = close & (exp.classes == ref.classes[i])
        if same.any():
            j = int(np.flatnonzero(same)[np.argmin(d[same])])
            used[j] = True
            m.matched += 1
            m.max_px = max(m.max_px, float(d[j]))
        elif close.any() and ref.scores[i] < sure:
            m.near += 1  # top class of a barely-detected box flipped: its class scores are within tolerance
        elif close.any():
            m.class_mismatch += 1
            j = int(np.flatnonzero(close)[np.argmin(d[close])])
            m.problems.append(
                f"{where}box {np.round(ref.boxes[i], 1).tolist()} class {int(ref.classes[i])} in PyTorch is class "
                f"{int(exp.classes[j])} in the export"
            )
        elif ref.scores[i] < sure or _tied(
            ref.boxes[i], ref.scores[i], ref.classes[i], exp, exp_raw, margin, iou, px_tol
        ):
            m.near += 1
        else:
            nearest = f"{float(d.min()):.2f}px" if len(d) else "no boxes"
            m.problems.append(
                f"{where}PyTorch box {np.round(ref.boxes[i], 1).tolist()} (class {int(ref.classes[i])}, "
                f"score {ref.scores[i]:.3f}) has no export match within {px_tol}px (nearest {nearest})"
            )
    _unmatched_exports(m, exp, ref, ref_raw, used, sure, margin, iou, px_tol, where)
    return m


def _predict(yolo, imgs: list[np.ndarray], imgsz: int, batch: int, conf: float, iou: float) -> list[Dets]:
    out = []
    for k in range(0, len(imgs) - batch + 1, batch):
        results = yolo.predict(
            imgs[k : k + batch], imgsz=imgsz, batch=batch, conf=conf, iou=iou, device="cpu", verbose=False, save=False
        )
        for r in results:
            b = r.boxes
            out.append(Dets(b.xyxy.cpu().numpy(), b.conf.cpu().numpy(), b.cls.cpu().numpy().astype(int)))
    return out


def full_scale(model, imgsz: int) -> np.ndarray:
    """(anchors,) box full scale ``16 * stride`` px per anchor of a square ``imgsz`` input, in Detect's order."""
    reg_max = int(getattr(model.model[-1], "reg_max", 16))
    strides = [int(s) for s in model.stride.tolist()]
    return np.concatenate([np.full((imgsz // s) ** 2, reg_max * s, np.float32) for s in strides])


@dataclass
class Row:
    """One line of the parity table."""

    fmt: str
    precision: str
    imgsz: int
    batch: int
    tol: float
    raw_box_px: float = float("nan")
    raw_box_rel: float = float("nan")  # max |d box| / (16 * stride), the DFL full scale
    raw_score: float = float("nan")
    det: Match = field(default_factory=Match)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.det.problems


@dataclass
class ParityReport:
    """All rows, the optional mAP comparison, and the verdict."""

    model: Path
    exported: Path
    rows: list[Row] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    map_pt: float | None = None
    map_exp: float | None = None
    map_tol: float = 0.5
    problems: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        out = list(self.problems)
        for r in self.rows:
            out += [f"[{r.fmt} {r.imgsz}px batch {r.batch}] {p}" for p in r.problems + r.det.problems]
        return out

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.failures

    def table(self) -> str:
        head = (
            f"{'format':<12}{'prec':<6}{'imgsz':>6}{'batch':>6}{'raw|dbox|px':>13}{'raw|dbox|/fs':>14}"
            f"{'raw|dscore|':>13}{'tol':>9}{'dets pt/exp':>13}{'matched':>9}{'max dpx':>9}{'cls!=':>6}{'near':>6}  result"
        )
        lines = [f"parity: {self.model} vs {self.exported}", head, "-" * len(head)]
        for r in self.rows:
            d = r.det
            lines.append(
                f"{r.fmt:<12}{r.precision:<6}{r.imgsz:>6}{r.batch:>6}{r.raw_box_px:>13.2e}{r.raw_box_rel:>14.2e}"
                f"{r.raw_score:>13.2e}{r.tol:>9.0e}{f'{d.n_ref}/{d.n_exp}':>13}{d.matched:>9}{d.max_px:>9.1e}"
                f"{d.class_mismatch:>6}{d.near:>6}  {'PASS' if r.ok else 'FAIL'}"
            )
        lines += [f"skipped: {s}" for s in self.skipped]
        empty = [f"{r.imgsz}px/b{r.batch}" for r in self.rows if not r.problems and r.det.n_ref == r.det.n_exp == 0]
        if empty:
            lines.append(f"note: no detections on either side at {', '.join(empty)}: detection check vacuous there")
        if self.map_pt is not None:
            delta = abs(self.map_exp - self.map_pt)
            verdict = "PASS" if delta <= self.map_tol else "FAIL"
            lines.append(
                f"mAP50-95: PyTorch {self.map_pt:.2f}  export {self.map_exp:.2f}  |delta| {delta:.2f} "
                f"(tolerance {self.map_tol} points)  {verdict}"
            )
        lines.append("PARITY OK" if self.ok else f"PARITY FAILED ({len(self.failures)} problem(s))")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if not self.rows:
            raise ParityError(f"parity of {self.exported}: nothing was checked ({'; '.join(self.skipped)})")
        if self.failures:
            raise ParityError(f"parity of {self.exported} with {self.model} FAILED:\n  " + "\n  ".join(self.failures))


def check_parity(
    model: str | Path,
    exported: str | Path,
    images: list[tuple[str, np.ndarray]] | None = None,
    sizes: tuple[int, ...] = (320, 640),
    batches: tuple[int, ...] = (1, 2),
    conf: float = 0.25,
    iou: float = 0.7,
    tol: float | None = None,
    margin: float | None = None,
    px_tol: float = 1.0,
    precision: str | None = None,
    data: str | Path | None = None,
    map_tol: float = 0.5,
) -> ParityReport:
    """Compare ``exported`` with the PyTorch ``model`` at every (size, batch) the export accepts.

    Static exports only accept their own input shape; other pairs are listed under ``skipped``. ``precision``
    (``fp32``/``fp16``) picks the default ``tol``/``margin``; by default it is read from the artifact. With ``data``,
    both models are also validated (``YOLO.val``) and their mAP50-95 must agree within ``map_tol`` points.
    """
    from ultralytics import YOLO

    from yolo_ema.export.backends import Runner, export_kind
    from yolo_ema.export.exporting import artifact_precision

    model, exported = Path(model), Path(exported)
    fmt = export_kind(exported)
    precision = precision or artifact_precision(exported, fmt)
    tol = RAW_TOL[precision] if tol is None else tol
    margin = MARGIN[precision] if margin is None else margin
    images = images if images is not None else synthetic_images(max(batches) * 2)
    report = ParityReport(model, exported, map_tol=map_tol)
    runner, ref = Runner(exported), YOLO(str(model)).model.float().eval().fuse()
    for imgsz in sizes:
        sq = [squared(im, imgsz) for _, im in images]
        for batch in batches:
            n = len(sq) - len(sq) % batch
            if n == 0:
                report.skipped.append(f"{imgsz}px batch {batch}: fewer than {batch} images")
                continue
            if not runner.accepts((batch, 3, imgsz, imgsz)):
                report.skipped.append(f"{imgsz}px batch {batch}: static export accepts only {runner.input_shape}")
                continue
            row = Row(fmt, precision, imgsz, batch, tol)
            ref_raw, exp_raw = _raw_head(row, ref, runner, sq[:n])
            if not row.problems:
                pairs = zip(ref_raw, exp_raw)
                row.det = _detections(model, exported, sq[:n], images, row, conf, iou, margin, px_tol, pairs)
            report.rows.append(row)
    if data is not None:
        report.map_pt, report.map_exp = map_pair(model, exported, data, sizes[-1], max(batches))
        if abs(report.map_exp - report.map_pt) > map_tol:
            report.problems.append(
                f"mAP50-95 {report.map_exp:.2f} (export) vs {report.map_pt:.2f} (PyTorch): "
                f"differs by more than {map_tol} points"
            )
    return report


def _raw_head(row: Row, ref, runner, sq: list[np.ndarray]) -> tuple[list[Dets], list[Dets]]:
    """Fill ``row``'s raw-head columns (and its problems) over ``sq`` in batches of ``row.batch``; return the
    pre-NMS candidates of both sides per image (PyTorch, export)."""
    import torch

    box_px = box_rel = score = 0.0
    ref_raw, exp_raw = [], []
    for k in range(0, len(sq), row.batch):
        x = to_input(sq[k : k + row.batch])
        with torch.inference_mode():
            y = ref(torch.from_numpy(x))
        y = (y[0] if isinstance(y, (list, tuple)) else y).numpy()
        try:
            e = runner(x)
        except Exception as err:  # noqa: BLE001 - any runtime failure is a parity failure, named
            row.problems.append(f"export failed to run on {tuple(x.shape)}: {type(err).__name__}: {err}")
            break
        if e.shape != y.shape:
            row.problems.append(f"output shape {e.shape} != PyTorch {y.shape} for input {tuple(x.shape)}")
            break
        ref_raw += [raw_dets(o, row.imgsz) for o in y]
        exp_raw += [raw_dets(o, row.imgsz) for o in e]
        dbox = np.abs(e[:, :4] - y[:, :4])
        box_px = max(box_px, float(dbox.max()))
        box_rel = max(box_rel, float((dbox / full_scale(ref, row.imgsz)).max()))
        score = max(score, float(np.abs(e[:, 4:] - y[:, 4:]).max()))
    row.raw_box_px, row.raw_box_rel, row.raw_score = box_px, box_rel, score
    if not np.isfinite([box_rel, score]).all() or max(box_rel, score) > row.tol:
        row.problems.append(
            f"raw head differs: max |dbox|/(16*stride) {box_rel:.3e}, max |dscore| {score:.3e} > tolerance {row.tol:.0e}"
        )
    return ref_raw, exp_raw


def _detections(model, exported, sq, images, row: Row, conf, iou, margin, px_tol, raw_pairs) -> Match:
    """Post-NMS detections of ``YOLO(model)`` and ``YOLO(exported)`` on ``sq``, matched image by image."""
    from ultralytics import YOLO

    pt_dets = _predict(YOLO(str(model)), sq, row.imgsz, row.batch, conf, iou)
    ex_dets = _predict(YOLO(str(exported), task="detect"), sq, row.imgsz, row.batch, conf, iou)
    total = Match()
    for i, (a, b, (a_raw, b_raw)) in enumerate(zip(pt_dets, ex_dets, raw_pairs)):
        m = match_detections(a, b, conf, margin, px_tol, iou, f"image {images[i][0]}: ", a_raw, b_raw)
        total.n_ref += m.n_ref
        total.n_exp += m.n_exp
        total.matched += m.matched
        total.max_px = max(total.max_px, m.max_px)
        total.class_mismatch += m.class_mismatch
        total.near += m.near
        total.problems += m.problems
    return total


def map_pair(model: Path, exported: Path, data: str | Path, imgsz: int, batch: int) -> tuple[float, float]:
    """mAP50-95 in points (0-100) of ``model`` and ``exported`` from ``YOLO.val`` on ``data``'s val split.

    The PyTorch model is validated with ``rect=False`` at ``imgsz`` so both see square letterboxed batches (a static
    export cannot take rectangular ones; Ultralytics forces ``rect=False`` for it).
    """
    import tempfile

    from ultralytics import YOLO

    with tempfile.TemporaryDirectory(prefix="yolo-ema-parity-val-") as tmp:
        common = dict(data=str(data), imgsz=imgsz, batch=batch, device="cpu", plots=False, verbose=False, workers=0)
        common.update(rect=False, project=tmp, exist_ok=True)
        a = YOLO(str(model)).val(name="pt", **common)
        b = YOLO(str(exported), task="detect").val(name="export", **common)
    return 100 * float(a.box.map), 100 * float(b.box.map)
