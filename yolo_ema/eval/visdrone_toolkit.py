"""The VisDrone2019-DET toolkit's evaluation, rule for rule, vectorised with numpy.

A port of the official MATLAB toolkit (github.com/VisDrone/VisDrone2018-DET-toolkit, the VisDrone2019-DET release):
``evalDET.m`` -> ``utils/saveAnnoRes.m`` -> ``utils/dropObjectsInIgr.m`` -> ``utils/calcAccuracy.m`` ->
``utils/evalRes.m`` / ``utils/compOas.m`` / ``utils/VOCap.m``. Published VisDrone-DET numbers come from that code, so
every rule is kept, including its quirks:

1. Ignored regions are category 0 only (``dropObjectsInIgr.m``: ``idxIgr = gt(:,6) == 0``); 'others' (11) is neither
   evaluated nor an ignored region.
2. Ignored-region geometry (``dropObjectsInIgr.m``): regions are painted into an integer image mask after
   ``max(1, .)``, with inclusive ends (rows ``y .. min(H, y+h)``, columns ``x .. min(W, x+w)``); an object or
   detection is rounded (``max(1, round(.))``), its corner clamped to the image, its covered pixels counted with the
   integral image (``createIntImg.m``) and it is dropped when ``covered / (w*h) >= 0.5``.
3. Order (``saveAnnoRes.m`` then ``calcAccuracy.m``): ignored-region drops first, then ``maxDets`` keeps the image's
   first k remaining detection rows, k in 1/10/100/500, over all classes together, in file order (not by score).
4. Matching (``evalRes.m``, ``compOas.m``): per image and class, detections by score (stable), greedy; a detection
   takes the unmatched regular object of highest IoU >= thr (ties: the later object); failing that, it is "ignored"
   (neither TP nor FP) when an ignore object (classes 1-10 with score 0) covers >= thr of the *detection's* area.
   Ignore objects stay in the recall denominator (``numel(gtMatch)``).
5. AP: detections of a class from all images ranked by score (stable, image order then per-image rank), VOC
   all-point interpolation (``VOCap.m``) at IoU 0.50:0.05:0.95 (MATLAB colon values), at 500 detections/image.
   AR(k): the recall reached with the first k detection rows of each image.
6. Class averaging (``calcAccuracy.m``: ``mean2(AP(evalClass, :))``): one entry per (image, class present in its
   ground truth), so a class weighs by the number of images containing it.

Images are taken in file-name order (the toolkit lists its annotation folder with ``dir``); that order only decides
ties of equal scores in different images. Pure numpy; no torch or Ultralytics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from yolo_ema.eval.gt import DROP_SOURCES
from yolo_ema.eval.ignore import kept_by_regions

MAX_DETS = (1, 10, 100, 500)  # calcAccuracy.m: maxDets = [1 10 100 500]


def matlab_colon(a: float, step: float, b: float) -> np.ndarray:
    """MATLAB's ``a:step:b`` for doubles: the first half as ``a + k*step``, the second as ``b - (n-k)*step``."""
    n = int(round((b - a) / step))
    return np.array([a + k * step if k < n / 2 else b - (n - k) * step for k in range(n + 1)])


IOU_THRS = matlab_colon(0.5, 0.05, 0.95)  # calcAccuracy.m: thr = 0.5:0.05:0.95


def overlaps(det: np.ndarray, gt: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """``compOas.m`` for paired rows: (N,) IoU of [x y w h] boxes ``det[n]``, ``gt[n]``; for ``ignore`` rows the
    intersection over the detection's area. Same operations in the same order as the MATLAB (bit-equal doubles)."""
    de, ge = det[:, :2] + det[:, 2:], gt[:, :2] + gt[:, 2:]
    w = np.minimum(de[:, 0], ge[:, 0]) - np.maximum(det[:, 0], gt[:, 0])
    h = np.minimum(de[:, 1], ge[:, 1]) - np.maximum(det[:, 1], gt[:, 1])
    t = w * h
    da = det[:, 2] * det[:, 3]
    u = np.where(ignore, da, (da + gt[:, 2] * gt[:, 3]) - t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((w > 0) & (h > 0), t / u, 0.0)


def _range_pairs(start: np.ndarray, cnt: np.ndarray, order: np.ndarray, chunk: int = 1 << 21):
    """Yield ``(d, g)`` index arrays: detection ``d`` with ``order[start[d] : start[d] + cnt[d]]``, in chunks."""
    ends = np.cumsum(cnt)
    cuts = np.searchsorted(ends, np.arange(chunk, ends[-1] if len(ends) else 0, chunk), "left") + 1
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(cnt)]):
        c = cnt[lo:hi]
        d = np.repeat(np.arange(lo, hi), c)
        offs = np.arange(len(d)) - np.repeat(np.cumsum(c) - c, c)
        yield d, order[np.repeat(start[lo:hi], c) + offs]


def _same_key_pairs(dkey: np.ndarray, gkey: np.ndarray):
    """Every detection/object pair with equal keys."""
    order = np.argsort(gkey, kind="stable")
    start = np.searchsorted(gkey[order], dkey, "left")
    return _range_pairs(start, np.searchsorted(gkey[order], dkey, "right") - start, order)


def _near_pairs(dkey: np.ndarray, dbox: np.ndarray, gkey: np.ndarray, gbox: np.ndarray):
    """Equal-key pairs that can reach IoU 0.5: IoU <= the 1-D IoU along x, and a 1-D IoU >= 0.5 needs
    ``|dx - gx| <= min(dw, gw)``, so only objects with ``gx`` in ``dx -+ dw`` (widened by a rounding margin) qualify."""
    dx, dw, gx = dbox[:, 0], dbox[:, 2], gbox[:, 0]
    margin = 1e-6 * (1 + np.abs(dx) + dw)
    lo_x = min(float((dx - dw - margin).min(initial=0)), float(gx.min(initial=0)))
    span = max(float((dx + dw + margin).max(initial=0)), float(gx.max(initial=0))) - lo_x + 1
    gval = gkey * span + (gx - lo_x)  # one sorted axis: key groups apart, x inside
    order = np.argsort(gval, kind="stable")
    sval = gval[order]
    start = np.searchsorted(sval, dkey * span + (dx - dw - margin - lo_x), "left")
    end = np.searchsorted(sval, dkey * span + (dx + dw + margin - lo_x), "right")
    return _range_pairs(start, end - start, order)


def _groups(img: np.ndarray, n_img: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable order of rows by image and the [start, end) bounds of each image in it."""
    order = np.argsort(img, kind="stable")
    bounds = np.searchsorted(img[order], np.arange(n_img + 1))
    return order, bounds


def _greedy_tp(d, g, rank, oa, gi, n_dnodes: int) -> np.ndarray:
    """TP flags of detection nodes from candidate pairs (detection node, object node, oa >= thr), as ``evalRes.m``.

    Sequential greedy matching (by ``rank``, each detection taking its best free object: highest oa, ties to the later
    object ``gi``) resolved in parallel rounds: a detection is settled once no better-ranked unsettled detection still
    has its current best object as a candidate; the best-ranked unsettled detection of a group always is, so every
    round settles at least one detection per contested group and the result equals the sequential loop.
    """
    tp = np.zeros(n_dnodes, dtype=bool)
    if not len(d):
        return tp
    order = np.lexsort((-gi, -oa, d))
    d, g, rank = d[order], g[order], rank[order]
    ug, g = np.unique(g, return_inverse=True)
    taken = np.zeros(len(ug), dtype=bool)
    best = np.empty(len(ug), dtype=np.int64)
    while d.size:
        first = np.ones(d.size, dtype=bool)
        first[1:] = d[1:] != d[:-1]
        fd, fg, fr = d[first], g[first], rank[first]  # each detection's best free object
        best.fill(np.iinfo(np.int64).max)
        np.minimum.at(best, g, rank)  # best-ranked unsettled detection wanting each object
        safe = best[fg] == fr
        tp[fd[safe]] = True
        taken[fg[safe]] = True
        keep = ~tp[d] & ~taken[g]
        d, g, rank = d[keep], g[keep], rank[keep]
    return tp


def _vocap(rec: np.ndarray, prec: np.ndarray) -> np.ndarray:
    """``VOCap.m`` along the last axis: all-point interpolated AP of (..., n) recall/precision curves."""
    shape = rec.shape[:-1]
    mrec = np.concatenate([np.zeros(shape + (1,)), rec, np.ones(shape + (1,))], axis=-1)
    mpre = np.concatenate([np.zeros(shape + (1,)), prec, np.zeros(shape + (1,))], axis=-1)
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre, -1), axis=-1), -1)
    return ((mrec[..., 1:] - mrec[..., :-1]) * mpre[..., 1:]).sum(-1)  # zero steps add nothing, as find(~=) skips


@dataclass(frozen=True)
class Rows:
    """Objects, detections or ignored regions flat over images; rows of an image in file order.

    img: (N,) image index (images in the toolkit's order). box: (N, 4) [x y w h]. cls: (N,) class index in
    ``range(n_classes)`` (-1: not evaluated, like 'others'). flag: (N,) True for ignore objects (score 0).
    score: (N,) detection scores. Regions use img and box only.
    """

    img: np.ndarray
    box: np.ndarray
    cls: np.ndarray | None = None
    flag: np.ndarray | None = None
    score: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> Rows:
        return Rows(*(None if v is None else v[idx] for v in (self.img, self.box, self.cls, self.flag, self.score)))


def _drop_in_regions(sizes: np.ndarray, gt: Rows, regions: Rows, det: Rows) -> tuple[np.ndarray, np.ndarray]:
    """``dropObjectsInIgr.m`` per image with regions: (G,) and (D,) masks of the objects and detections kept."""
    n_img = len(sizes)
    gt_kept = np.ones(len(gt.img), dtype=bool)
    det_kept = np.ones(len(det.img), dtype=bool)
    r_order, r_b = _groups(regions.img, n_img)
    g_order, g_b = _groups(gt.img, n_img)
    d_order, d_b = _groups(det.img, n_img)
    for i in np.flatnonzero(np.diff(r_b)):
        boxes = regions.box[r_order[r_b[i] : r_b[i + 1]]]
        gi, di = g_order[g_b[i] : g_b[i + 1]], d_order[d_b[i] : d_b[i + 1]]
        keep = kept_by_regions(np.concatenate([gt.box[gi], det.box[di]]), boxes, *sizes[i])
        gt_kept[gi], det_kept[di] = keep[: len(gi)], keep[len(gi) :]
    return gt_kept, det_kept


def _first_rows(det: Rows, n_img: int) -> tuple[Rows, np.ndarray]:
    """``calcAccuracy.m``: ``det(1:min(size(det,1), maxDets), :)``, the image's first rows after the drop.

    Returns the detections within the largest cap and (D,) each one's position among its image's rows.
    """
    d_order, d_b = _groups(det.img, n_img)
    pos = np.empty(len(det.img), dtype=np.int64)
    pos[d_order] = np.arange(len(det.img)) - np.repeat(d_b[:-1], np.diff(d_b))
    cap = pos < MAX_DETS[-1]
    return det.take(cap), pos[cap]


def _candidates(det: Rows, gt: Rows, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs (detection, object, oa) of the same image and class (``evalRes.m`` runs per image and class)
    with a regular object at oa >= the lowest threshold, and (D,) each detection's best intersection-over-detection
    with an ignore object."""
    ign_best = np.zeros(len(det.img))
    dkey, gkey = det.img * n_classes + det.cls, gt.img * n_classes + gt.cls
    reg, ign = np.flatnonzero(~gt.flag), np.flatnonzero(gt.flag)
    for a, b in _same_key_pairs(dkey, gkey[ign]):
        np.maximum.at(ign_best, a, overlaps(det.box[a], gt.box[ign[b]], np.ones(len(a), dtype=bool)))
    pd, pg, poa = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
    for a, b in _near_pairs(dkey, det.box, gkey[reg], gt.box[reg]):
        b = reg[b]
        oa = overlaps(det.box[a], gt.box[b], np.zeros(len(a), dtype=bool))
        keep = oa >= IOU_THRS[0]
        pd.append(a[keep])
        pg.append(b[keep])
        poa.append(oa[keep])
    return np.concatenate(pd), np.concatenate(pg), np.concatenate(poa), ign_best


def _matches(pairs: tuple[np.ndarray, ...], pos: np.ndarray, drank: np.ndarray, n_gt_rows: int) -> np.ndarray:
    """(K, T, D) TP flags: one greedy matching per (maxDets, threshold), nodes (k, t, detection) and (k, t, object)."""
    pd, pg, poa = pairs
    D = len(pos)
    e_d, e_g, e_r, e_oa, e_gi = [], [], [], [], []
    for kt, (k, thr) in enumerate((k, thr) for k in MAX_DETS for thr in IOU_THRS):
        s = np.flatnonzero((pos[pd] < k) & (poa >= thr))
        e_d.append(kt * D + pd[s])
        e_g.append(kt * n_gt_rows + pg[s])
        e_r.append(drank[pd[s]])
        e_oa.append(poa[s])
        e_gi.append(pg[s])
    e_d, e_g, e_r, e_oa, e_gi = (np.concatenate(v) for v in (e_d, e_g, e_r, e_oa, e_gi))
    K, T = len(MAX_DETS), len(IOU_THRS)
    return _greedy_tp(e_d, e_g, e_r, e_oa, e_gi, K * T * D).reshape(K, T, D)


def _class_counts(gt: Rows, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(C,) objects per class (``numel(gtMatch)``: ignore objects included) and (C,) images containing the class
    (``evalClass``: one entry per (image, class present))."""
    C = n_classes
    n_gt = np.bincount(gt.cls, minlength=C)[:C]
    n_images = np.zeros(C, dtype=np.int64)
    if len(gt.cls):
        n_images = np.bincount(np.unique(gt.img * C + gt.cls) % C, minlength=C)[:C]
    return n_gt, n_images


def _recall(tp: np.ndarray, dcls: np.ndarray, n_gt: np.ndarray) -> np.ndarray:
    """(C, T, K) recall per class, threshold and maxDets: max(rec) is the final recall."""
    K, T, _ = tp.shape
    C = len(n_gt)
    denom = np.maximum(1, n_gt).astype(np.float64)
    tp_count = np.zeros((K, T, C))
    for ki in range(K):
        tp_count[ki] = np.stack([np.bincount(dcls, weights=tp[ki, t], minlength=C)[:C] for t in range(T)])
    return (tp_count / denom[None, None, :]).transpose(2, 1, 0)


def _average_precision(hit: np.ndarray, det: Rows, pos: np.ndarray, ign_best, n_gt, n_images) -> np.ndarray:
    """(C, T) ``VOCap.m`` AP from the (T, D) TP flags at 500 detections: a class's detections from all images ranked
    by score (``sort(-detMatch(:,1))``, stable on image order then per-image rank); a detection on an ignore object
    is neither TP nor FP."""
    ap = np.zeros((len(n_gt), len(IOU_THRS)))
    denom = np.maximum(1, n_gt).astype(np.float64)
    rank_all = np.lexsort((pos, det.img, -det.score))
    for c in np.flatnonzero(n_images):
        o = rank_all[det.cls[rank_all] == c]
        if not len(o):
            continue
        h = hit[:, o]  # (T, n)
        ignored = ~h & (ign_best[o][None, :] >= IOU_THRS[:, None])
        tps = np.cumsum(h, axis=1)
        fps = np.cumsum(~h & ~ignored, axis=1)
        ap[c] = _vocap(tps / denom[c], tps / np.maximum(1, tps + fps))
    return ap


def score_arrays(sizes: np.ndarray, gt: Rows, regions: Rows, det: Rows, n_classes: int) -> dict:
    """The toolkit's numbers from flat arrays; see the module docstring for the rules.

    Args:
        sizes: (I, 2) image width, height; images in the toolkit's order (ties between images follow it).
        gt: objects with ``cls`` and ``flag`` (ignore objects). regions: the ignored regions (category 0).
        det: detections with ``cls`` and ``score``; the per-image caps keep an image's first rows.

    Returns:
        ``{"ap": (C, T), "ar": (C, T, 4), "n_images": (C,), "n_gt": (C,), "gt_kept": (G,) bool, "det_kept": (D,)
        bool}``: AP/AR in [0, 1] per class and IoU threshold (AR per maxDets 1/10/100/500), the images containing each
        class after the drop, the objects of each class (ignore ones included) and the drop masks.
    """
    gt_kept, det_kept = _drop_in_regions(sizes, gt, regions, det)
    g = gt.take(np.flatnonzero(gt_kept & (gt.cls >= 0)))
    d, pos = _first_rows(det.take(np.flatnonzero(det_kept)), len(sizes))
    drank = np.empty(len(pos), dtype=np.int64)  # evalRes.m order: per (image, class) by score, stable on file order
    drank[np.lexsort((pos, -d.score, d.cls, d.img))] = np.arange(len(pos))
    *pairs, ign_best = _candidates(d, g, n_classes)
    tp = _matches(pairs, pos, drank, len(g.img))
    n_gt, n_images = _class_counts(g, n_classes)
    ap = _average_precision(tp[-1], d, pos, ign_best, n_gt, n_images)
    ar = _recall(tp, d.cls, n_gt)
    return {"ap": ap, "ar": ar, "n_images": n_images, "n_gt": n_gt, "gt_kept": gt_kept, "det_kept": det_kept}


def summarize(ap: np.ndarray, ar: np.ndarray, n_images: np.ndarray) -> dict:
    """``calcAccuracy.m``'s AP, AP50, AP75, AR1..AR500: means over (image, class present) entries; None if none."""
    w = n_images.astype(np.float64)
    if w.sum() == 0:
        return dict.fromkeys(["AP", "AP50", "AP75", *(f"AR{k}" for k in MAX_DETS)])
    t50, t75 = 0, int(np.flatnonzero(np.isclose(IOU_THRS, 0.75))[0])
    out = {
        "AP": float(w @ ap.mean(1) / w.sum()),
        "AP50": float(w @ ap[:, t50] / w.sum()),
        "AP75": float(w @ ap[:, t75] / w.sum()),
    }
    for j, k in enumerate(MAX_DETS):
        out[f"AR{k}"] = float(w @ ar[:, :, j].mean(1) / w.sum())
    return out


def _image_order(images: list[dict]) -> list[int]:
    """Positions of ``images`` in the toolkit's order: by file name (``dir`` of the annotation folder), then id."""
    key = [(os.path.basename(str(im.get("file_name", ""))), str(im["id"])) for im in images]
    return sorted(range(len(images)), key=key.__getitem__)


def evaluate(gt: dict, detections: list[dict]) -> dict:
    """The VisDrone2019-DET toolkit's AP, AP50, AP75, AR1, AR10, AR100, AR500 for COCO-format data.

    Args:
        gt: a loaded COCO ground truth (:func:`yolo_ema.eval.gt.load_gt`). Evaluated classes: its categories.
            ``ignore_regions`` with source ``ignored_region`` are the toolkit's category 0, ``score0`` its score-0
            objects of classes 1-10 (ignore objects of their ``category_id``); ``others`` are not used (the toolkit
            neither evaluates category 11 nor treats it as a region). Crowd annotations count as ignore objects.
        detections: checked detections (:func:`yolo_ema.eval.gt.check_detections`). **Order matters**: each image's
            detections are taken in the order given (the toolkit's file order) and the 1/10/100/500 caps keep that
            image's first rows after the ignored-region drop, whatever their scores. Sort them by score first if you
            want the best ones kept; ``yolo-ema``'s own predictions come sorted by score.

    Returns:
        ``{AP, AP50, AP75, AR1, AR10, AR100, AR500}`` as fractions (None when no class has ground truth), plus
        ``n_gt`` (objects left after the drop, ignore objects excluded), ``n_gt_ignore``, ``n_gt_dropped``,
        ``n_dets_dropped`` (in ignored regions) and ``per_class`` [{id, name, n_images, n_gt, AP, AP50, AP75, AR500}].
    """
    sizes, objects, regions, dets = _rows(gt, detections)
    res = score_arrays(sizes, objects, regions, dets, len(gt["categories"]))
    kept, n_anns, counted = res["gt_kept"], len(gt["annotations"]), objects.cls >= 0
    out = summarize(res["ap"], res["ar"], res["n_images"])
    out["n_gt"] = int((kept & ~objects.flag & counted).sum())
    out["n_gt_ignore"] = int((kept & objects.flag & counted).sum())
    out["n_gt_dropped"] = int((~kept[:n_anns]).sum())
    out["n_dets_dropped"] = int((~res["det_kept"]).sum())
    out["per_class"] = _per_class(gt["categories"], res)
    return out


def _rows(gt: dict, detections: list[dict]) -> tuple[np.ndarray, Rows, Rows, Rows]:
    """(image sizes, objects, ignored regions, detections) of :func:`score_arrays` from COCO-format data; objects
    are the annotations followed by the score-0 ignore regions."""
    images = gt["images"]
    order = _image_order(images)
    pos_of = {images[p]["id"]: i for i, p in enumerate(order)}
    sizes = np.array([[images[p]["width"], images[p]["height"]] for p in order], dtype=np.float64).reshape(-1, 2)
    cls_of = {c["id"]: j for j, c in enumerate(gt["categories"])}
    anns = gt["annotations"]
    scored0 = [r for r in gt.get("ignore_regions") or [] if r.get("source") == "score0"]
    regions = [r for r in gt.get("ignore_regions") or [] if r.get("source", "ignored_region") in DROP_SOURCES]
    objs = anns + scored0
    objects = Rows(
        np.array([pos_of[a["image_id"]] for a in objs], dtype=np.int64),
        np.array([a["bbox"] for a in objs], dtype=np.float64).reshape(-1, 4),
        cls=np.array([cls_of.get(a.get("category_id"), -1) for a in objs], dtype=np.int64),
        flag=np.array([bool(a.get("iscrowd", 0)) for a in anns] + [True] * len(scored0), dtype=bool),
    )
    region_rows = Rows(
        np.array([pos_of[r["image_id"]] for r in regions], dtype=np.int64),
        np.array([r["bbox"] for r in regions], dtype=np.float64).reshape(-1, 4),
    )
    dets = Rows(
        np.array([pos_of[d["image_id"]] for d in detections], dtype=np.int64),
        np.array([d["bbox"] for d in detections], dtype=np.float64).reshape(-1, 4),
        cls=np.array([cls_of[d["category_id"]] for d in detections], dtype=np.int64),
        score=np.array([d["score"] for d in detections], dtype=np.float64),
    )
    return sizes, objects, region_rows, dets


def _per_class(cats: list[dict], res: dict) -> list[dict]:
    """``[{id, name, n_images, n_gt, AP, AP50, AP75, AR500}]`` in category order; None where no image has the class."""
    t75 = int(np.flatnonzero(np.isclose(IOU_THRS, 0.75))[0])
    rows = []
    for j, c in enumerate(cats):
        row = {"id": c["id"], "name": c.get("name", str(c["id"])), "n_images": int(res["n_images"][j]),
               "n_gt": int(res["n_gt"][j])}  # fmt: skip
        if res["n_images"][j]:
            ap = res["ap"][j]
            row.update(
                AP=float(ap.mean()), AP50=float(ap[0]), AP75=float(ap[t75]), AR500=float(res["ar"][j, :, -1].mean())
            )
        else:
            row.update(dict.fromkeys(("AP", "AP50", "AP75", "AR500")))
        rows.append(row)
    return rows
