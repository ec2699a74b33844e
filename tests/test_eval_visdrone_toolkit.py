"""The VisDrone2019-DET toolkit protocol (yolo_ema.eval.visdrone_toolkit): hand-derived cases, one per rule, and
agreement with a plain loop-by-loop port of the official MATLAB toolkit (below) on random and real annotations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from yolo_ema.data.visdrone import GroundTruth
from yolo_ema.eval.metrics import evaluate_detections
from yolo_ema.eval.visdrone_toolkit import IOU_THRS

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "visdrone-samples"
KEYS = ("AP", "AP50", "AP75", "AR1", "AR10", "AR100", "AR500")

# ---------------------------------------------------------------------------------------------------------------------
# Reference: github.com/VisDrone/VisDrone2018-DET-toolkit, ported loop by loop (same loops, 1-based index arithmetic).
# Inputs are the toolkit's own rows [x y w h score category] per image, in file order.
# ---------------------------------------------------------------------------------------------------------------------


def mround(v):
    """MATLAB round: halves away from zero."""
    return math.copysign(math.floor(abs(v) + 0.5), v)


def create_int_img(img):
    """createIntImg.m (cumulative sums along both axes give the same table as its loops)."""
    return np.cumsum(np.cumsum(img, axis=0), axis=1)


def drop_objects_in_igr(gt, det, img_height, img_width):
    """dropObjectsInIgr.m; ``gt``/``det`` are lists of 6-value rows."""
    curgt = [r for r in gt if r[5] != 0]
    igr = [[max(1, v) for v in r[:4]] for r in gt if r[5] == 0]
    if not igr:
        return curgt, list(det)
    igr_map = np.zeros((img_height, img_width))
    for x, y, w, h in igr:
        x, y, w, h = (int(mround(v)) for v in (x, y, w, h))
        r1, c1 = min(img_height, y + h), min(img_width, x + w)
        if y <= r1 and x <= c1:
            igr_map[y - 1 : r1, x - 1 : c1] = 1  # MATLAB igrMap(y:r1, x:c1) = 1
    integral = create_int_img(igr_map)

    def val(r, c):  # intIgrMap(r, c), 1-based
        return integral[int(r) - 1, int(c) - 1]

    def left(rows):
        out = []
        for row in rows:
            pos = [max(1, mround(v)) for v in row[:4]]
            x = max(1, min(img_width, pos[0]))
            y = max(1, min(img_height, pos[1]))
            w, h = pos[2], pos[3]
            tl = val(y, x)
            tr = val(y, min(img_width, x + w))
            bl = val(max(1, min(img_height, y + h)), x)
            br = val(max(1, min(img_height, y + h)), min(img_width, x + w))
            if (tl + br - tr - bl) / (h * w) < 0.5:
                out.append(row)
        return out

    return left(curgt), left(det)


def save_anno_res(gts, dets, sizes):
    """saveAnnoRes.m: drop, then flip the score column into an ignore flag (score 0 -> 1, score 1 -> 0)."""
    allgt, alldet = [], []
    for gt, det, (w, h) in zip(gts, dets, sizes):
        newgt, det = drop_objects_in_igr(gt, det, h, w)
        g = [list(r) for r in newgt]
        for r, o in zip(g, newgt):
            if o[4] == 0:
                r[4] = 1
            elif o[4] == 1:
                r[4] = 0
        allgt.append(g)
        alldet.append(det)
    return allgt, alldet


def comp_oas(dt, gt, ig):
    """compOas.m."""
    oa = np.zeros((len(dt), len(gt)))
    for i, d in enumerate(dt):
        for j, g in enumerate(gt):
            w = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
            if w <= 0:
                continue
            h = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
            if h <= 0:
                continue
            t = w * h
            u = d[2] * d[3] if ig[j] else d[2] * d[3] + g[2] * g[3] - t
            oa[i, j] = t / u
    return oa


def eval_res(gt0, dt0, thr):
    """evalRes.m (mul = 0): returns gt flags and [(score, flag)] of the detections, in its sorted order."""
    dt = sorted(dt0, key=lambda r: -r[4])  # sort(..., 'descend') is stable
    gt = sorted(gt0, key=lambda r: r[4])  # ignore last, stable
    gflag = [-r[4] for r in gt]
    dflag = [0] * len(dt)
    oa = comp_oas(dt, gt, [f == -1 for f in gflag])
    for d in range(len(dt)):
        bst_oa, bstg, bstm = thr, -1, 0
        for g in range(len(gt)):
            m = gflag[g]
            if m == 1:
                continue
            if bstm != 0 and m == -1:
                break
            if oa[d, g] < bst_oa:
                continue
            bst_oa, bstg, bstm = oa[d, g], g, (1 if m == 0 else -1)
        if bstm == -1:
            dflag[d] = -1
        elif bstm == 1:
            gflag[bstg] = 1
            dflag[d] = 1
    return gflag, [(r[4], f) for r, f in zip(dt, dflag)]


def voc_ap(rec, prec):
    """VOCap.m."""
    mrec = [0.0, *rec, 1.0]
    mpre = [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def calc_accuracy(allgt, alldet):
    """calcAccuracy.m, in fractions (the toolkit prints percent)."""
    thrs = [0.5 + k * 0.05 if k < 4.5 else 0.95 - (9 - k) * 0.05 for k in range(10)]  # MATLAB's 0.5:0.05:0.95
    ap = np.zeros((10, 10))
    ar = np.zeros((10, 10, 4))
    eval_class = []
    for c in range(1, 11):
        eval_class += [c for gt in allgt if any(r[5] == c for r in gt)]
        for x, thr in enumerate(thrs):
            for y, max_dets in enumerate([1, 10, 100, 500]):
                gt_match, det_match = [], []
                for gt, det in zip(allgt, alldet):
                    gt0 = [r[:5] for r in gt if r[5] == c]
                    dt0 = [r[:5] for r in det[:max_dets] if r[5] == c]
                    g1, d1 = eval_res(gt0, dt0, thr)
                    gt_match += g1
                    det_match += d1
                ranked = sorted(det_match, key=lambda t: -t[0])  # sort(-score): stable
                tp = np.cumsum([f == 1 for _, f in ranked])
                rec = tp / max(1, len(gt_match))
                if len(rec):
                    ar[c - 1, x, y] = rec.max()
            fp = np.cumsum([f == 0 for _, f in ranked])
            prec = tp / np.maximum(1, fp + tp)
            ap[c - 1, x] = voc_ap(list(rec), list(prec))
    rows = [c - 1 for c in eval_class]
    if not rows:
        return dict.fromkeys(["AP", "AP50", "AP75", "AR1", "AR10", "AR100", "AR500"])
    out = {"AP": ap[rows].mean(), "AP50": ap[rows, 0].mean(), "AP75": ap[rows, 5].mean()}
    for y, k in enumerate([1, 10, 100, 500]):
        out[f"AR{k}"] = ar[rows, :, y].mean()
    return {k: float(v) for k, v in out.items()}


def toolkit(gts, dets, sizes):
    """evalDET.m on rows: ``gts``/``dets`` lists (per image, in the toolkit's image order) of [x y w h score cat]."""
    allgt, alldet = save_anno_res(gts, dets, sizes)
    return calc_accuracy(allgt, alldet)


# ---------------------------------------------------------------------------------------------------------------------
# Toolkit rows <-> the COCO ground truth `yolo-ema prepare visdrone` writes.
# ---------------------------------------------------------------------------------------------------------------------
def to_coco(gts, dets, sizes):
    """Rows per image -> (COCO gt dict, COCO detections in file order); images named so that name order = list order."""
    truth = GroundTruth()
    out = []
    for i, (rows, drows, (w, h)) in enumerate(zip(gts, dets, sizes), 1):
        assert truth.add_rows(f"images/val/{i:07d}.jpg", w, h, rows) == i
        out += [
            {"image_id": i, "category_id": int(c), "bbox": [x, y, bw, bh], "score": s} for x, y, bw, bh, s, c in drows
        ]
    return truth.as_dict("toolkit rows"), out


def toolkit_ours(gts, dets, sizes):
    gt, d = to_coco(gts, dets, sizes)
    return evaluate_detections(gt, d, "visdrone")["visdrone"]


def random_case(seed: int, n_images: int = 4):
    """Small crowded images with every toolkit quirk in play: ignored regions (also past the border), 'others',
    score-0 objects, boxes leaving the image, integer and half-pixel coordinates, tied scores and tied IoUs, and more
    detection rows than the 1/10 caps."""
    rng = np.random.default_rng(seed)
    gts, dets, sizes = [], [], []
    for _ in range(n_images):
        w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        rows = []
        for _ in range(int(rng.integers(0, 16))):
            cat = int(rng.choice([1, 2, 4, 5, 0, 11], p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1]))
            bw, bh = int(rng.integers(2, 20)), int(rng.integers(2, 20))
            x, y = int(rng.integers(-3, w)), int(rng.integers(-3, h))
            score = 0 if cat in (0, 11) or rng.random() < 0.1 else 1
            rows.append([x, y, bw, bh, score, cat, 0, 0])
            if cat and rng.random() < 0.2:  # a twin 2 px to the right: equal IoUs for a detection 1 px right
                rows.append([x + 2, y, bw, bh, score, cat, 0, 0])
        drows = []
        objects = [r for r in rows if r[5] != 0]
        for _ in range(int(rng.integers(0, 30))):
            if objects and rng.random() < 0.7:
                x, y, bw, bh, _, cat = objects[int(rng.integers(len(objects)))][:6]
                j = rng.choice([0, 0.5, 1, 2], size=4) * rng.choice([-1, 1], size=4)
                x, y, bw, bh = x + j[0], y + j[1], max(1.0, bw + j[2]), max(1.0, bh + j[3])
                cat = cat if cat != 11 and rng.random() < 0.85 else int(rng.choice([1, 2, 4, 5]))
            else:
                x, y = float(rng.integers(-2, w)), float(rng.integers(-2, h))
                bw, bh, cat = float(rng.integers(1, 20)), float(rng.integers(1, 20)), int(rng.choice([1, 2, 4, 5]))
            score = float(rng.choice([0.9, 0.5, 0.3])) if rng.random() < 0.4 else float(rng.random())
            drows.append([float(x), float(y), float(bw), float(bh), score, cat])
        gts.append(rows)
        dets.append(drows)
        sizes.append((w, h))
    return gts, dets, sizes


def assert_agree(ours, ref, tol=1e-9):
    diff = {k: abs(ours[k] - ref[k]) for k in KEYS if ours[k] is not None}
    assert all(ours[k] is None for k in KEYS) == all(ref[k] is None for k in KEYS)
    assert max(diff.values(), default=0.0) <= tol, (diff, ours, ref)


@pytest.mark.parametrize("seed", range(40))
def test_agrees_with_loop_port_on_random_cases(seed):
    gts, dets, sizes = random_case(seed)
    assert_agree(toolkit_ours(gts, dets, sizes), toolkit(gts, dets, sizes))


def load_samples():
    if not (SAMPLES / "image_sizes.csv").is_file():
        pytest.skip(f"real VisDrone annotation samples not present ({SAMPLES})")
    gts, sizes = [], []
    for line in (SAMPLES / "image_sizes.csv").read_text().splitlines()[1:]:
        split, stem, w, h = line.split(",")
        txt = SAMPLES / f"VisDrone2019-DET-{split}" / "annotations" / f"{stem}.txt"
        rows = [[float(v) for v in ln.split(",")[:8]] for ln in txt.read_text().splitlines() if ln.strip()]
        gts.append(rows)
        sizes.append((int(w), int(h)))
    return gts, sizes


def perturbed_detections(gts, sizes, seed):
    """Detections made from the GT: jittered boxes (some with the wrong class), misses, false positives; per image
    sorted by score as a detector writes them."""
    rng = np.random.default_rng(seed)
    dets = []
    for rows, (w, h) in zip(gts, sizes):
        out = []
        for x, y, bw, bh, _, cat, *_ in rows:
            if cat in (0, 11) or rng.random() < 0.15:
                continue
            j = rng.normal(0, 0.12, 4) * [bw, bh, bw, bh]
            c = int(cat) if rng.random() < 0.9 else int(rng.integers(1, 11))
            out.append([x + j[0], y + j[1], max(1.0, bw + j[2]), max(1.0, bh + j[3]), float(rng.random()), c])
        for _ in range(int(rng.integers(5, 40))):
            bw, bh = float(rng.integers(4, 60)), float(rng.integers(4, 60))
            out.append([float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh)), bw, bh, 0.5 * float(rng.random()),
                        int(rng.integers(1, 11))])  # fmt: skip
        out.sort(key=lambda r: -r[4])
        dets.append(out)
    return dets


def test_agrees_with_loop_port_on_real_annotations():
    gts, sizes = load_samples()
    dets = perturbed_detections(gts, sizes, seed=0)
    ours, ref = toolkit_ours(gts, dets, sizes), toolkit(gts, dets, sizes)
    assert_agree(ours, ref)
    assert 0.2 < ours["AP50"] < 0.95  # a non-trivial case


def test_prepared_real_annotations_agree_with_loop_port(tmp_path):
    """The same check through `prepare visdrone` (blank images of the real sizes): its COCO json, with ignored
    regions, 'others' and score-0 objects as it writes them, scores as the toolkit scores the raw txt files."""
    import io
    import json

    from PIL import Image

    from yolo_ema.data import visdrone

    gts, sizes = load_samples()
    stems = [ln.split(",")[:2] for ln in (SAMPLES / "image_sizes.csv").read_text().splitlines()[1:]]
    folder = {"val": "VisDrone2019-DET-val", "test-dev": "VisDrone2019-DET-test-dev"}
    for (split, stem), (w, h) in zip(stems, sizes):
        root = tmp_path / "src" / folder[split]
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "annotations").mkdir(exist_ok=True)
        buf = io.BytesIO()
        Image.new("RGB", (w, h)).save(buf, "JPEG")
        (root / "images" / f"{stem}.jpg").write_bytes(buf.getvalue())
        (root / "annotations" / f"{stem}.txt").write_bytes(
            (SAMPLES / folder[split] / "annotations" / f"{stem}.txt").read_bytes()
        )
    visdrone.prepare(tmp_path / "src", tmp_path / "out", progress=False, write_yaml=False)
    dets = perturbed_detections(gts, sizes, seed=1)
    for split, name in (("val", "val"), ("test-dev", "test")):
        gt = json.loads((tmp_path / "out" / "annotations" / f"{name}.json").read_text())
        image_id = {Path(im["file_name"]).stem: im["id"] for im in gt["images"]}
        pick = sorted((stem, k) for k, (sp, stem) in enumerate(stems) if sp == split)  # the toolkit's dir() order
        coco_dets = [
            {"image_id": image_id[stem], "category_id": int(c), "bbox": [x, y, bw, bh], "score": sc}
            for stem, k in pick
            for x, y, bw, bh, sc, c in dets[k]
        ]
        ours = evaluate_detections(gt, coco_dets, "auto")
        assert ours["protocol"] == "visdrone"
        ref = toolkit([gts[k] for _, k in pick], [dets[k] for _, k in pick], [sizes[k] for _, k in pick])
        assert_agree(ours["visdrone"], ref)


# ---------------------------------------------------------------------------------------------------------------------
# One hand-derived case per rule. Image 100 x 100 unless said; GT rows [x y w h score cat].
# ---------------------------------------------------------------------------------------------------------------------
def one_image(gt_rows, det_rows, size=(100, 100)):
    return toolkit_ours([gt_rows], [det_rows], [size])


def test_rule_others_are_neither_evaluated_nor_ignored_regions():
    # One car (cat 4) found exactly; a confident car detection lies fully inside an 'others' box (cat 11). 'others'
    # is no ignored region (dropObjectsInIgr.m drops only category 0), so that detection stays and is a false positive
    # ranked first: rec [0, 1], prec [0, 1/2] -> VOC AP = 1 * 1/2 at every IoU.
    gt = [[10, 10, 20, 20, 1, 4], [60, 60, 30, 30, 0, 11]]
    dets = [[65, 65, 10, 10, 0.99, 4], [10, 10, 20, 20, 0.9, 4]]
    r = one_image(gt, dets)
    assert r["n_dets_dropped"] == 0 and r["AP"] == pytest.approx(0.5) and r["AR500"] == 1.0
    # The same box as category 0 is an ignored region: the detection is dropped and AP = 1.
    gt[1][5] = 0
    r = one_image(gt, dets)
    assert r["n_dets_dropped"] == 1 and r["AP"] == 1.0


@pytest.mark.parametrize(
    "box, region, kept, why",
    [
        # Region x=7,w=10 paints columns 7..17 (inclusive ends); box [1 1 10 10] counts columns 2..11, rows 2..11:
        # 5 x 10 = 50 pixels of 100 -> 0.5 -> dropped (continuous geometry would give 4/10 and keep it).
        ([1, 1, 10, 10], [7, 1, 10, 10], False, "inclusive region ends"),
        # Region x=8: columns 8..18 -> 4 x 10 = 40 -> kept.
        ([1, 1, 10, 10], [8, 1, 10, 10], True, "one column less"),
        # MATLAB round(2.5) = 3: columns 4..13 against region 9..19 -> 5 x 10 = 0.5 -> dropped (round-half-even would
        # give x=2, columns 3..12 -> 4 -> kept).
        ([2.5, 1, 10, 10], [9, 1, 10, 10], False, "round halves away from zero"),
        # max(1, .): a box at x=-5 counts from x=1 with its own w=10 -> columns 2..11; region 7..17 -> 5 x 10 -> drop.
        ([-5, 1, 10, 10], [7, 1, 10, 10], False, "max(1, .) moves the box"),
        # Clamp: box [95 95 10 10] counts rows/columns 96..100 against region 90..100 -> 25 pixels over w*h = 100
        # (the area is not clipped) -> 0.25 -> kept.
        ([95, 95, 10, 10], [90, 90, 10, 10], True, "clamped corner, unclipped area"),
    ],
)
def test_rule_coverage_geometry(box, region, kept, why):
    from yolo_ema.eval.ignore import kept_by_regions

    assert kept_by_regions([box], [region], 100, 100).tolist() == [kept], why
    # Through the evaluator: a lone car at `box`; dropped -> no ground truth -> all None; kept -> found -> 1.0.
    r = one_image([[*box, 1, 4], [*region, 0, 0]], [[*box, 0.9, 4]])
    assert r["n_gt_dropped"] == (0 if kept else 1)
    assert r["AP"] == (1.0 if kept else None)


def test_rule_drop_first_then_cap_in_file_order():
    # 500 detection rows inside an ignored region come first, then the true car. Dropped first, the car becomes the
    # image's first row: AR1 = AR500 = 1.
    region = [0, 0, 40, 40, 0, 0]
    car = [60, 60, 20, 20, 1, 4]
    junk = [[5 + i % 20, 5 + i // 25, 5, 5, 0.95, 4] for i in range(500)]
    r = one_image([car, region], junk + [[60, 60, 20, 20, 0.1, 4]])
    assert r["n_dets_dropped"] == 500 and r["AR1"] == 1.0 and r["AR500"] == 1.0
    # 500 rows outside any region come first: the 501st row is cut whatever its score (file order, not by score).
    junk = [[i % 50, 45 + i // 50, 3, 3, 0.01, 4] for i in range(500)]
    r = one_image([car, region], junk + [[60, 60, 20, 20, 0.99, 4]])
    assert r["AR500"] == 0.0 and r["AP"] == 0.0


def test_rule_max_dets_over_all_classes():
    # A car and a van; the van's detection is row 1, the car's row 2. AR1 keeps the image's first row only, whatever
    # its class: van recall 1, car recall 0 -> AR1 = (1 + 0) / 2 (COCO's per-class cap would give 1).
    r = one_image(
        [[10, 10, 20, 20, 1, 4], [50, 50, 20, 20, 1, 5]], [[50, 50, 20, 20, 0.5, 5], [10, 10, 20, 20, 0.9, 4]]
    )
    assert r["AR1"] == 0.5 and r["AR10"] == 1.0


def test_rule_score0_objects_are_ignore_ground_truth():
    # Two pedestrians, one with score 0 (ignore). Detection 1 (score .9) sits on the ignore one: 8x8 inside its 10x10
    # box -> intersection / detection area = 1 >= every threshold -> ignored, neither TP nor FP. Detection 2 finds the
    # regular one. Recall counts both objects (numel(gtMatch) = 2): rec [0, 1/2]; prec [0/max(1,0), 1/1] = [0, 1];
    # VOC AP = 1/2 * 1 = 0.5, AR = 0.5.
    gt = [[10, 10, 10, 10, 0, 1], [50, 50, 10, 10, 1, 1]]
    dets = [[11, 11, 8, 8, 0.9, 1], [50, 50, 10, 10, 0.8, 1]]
    r = one_image(gt, dets)
    assert r["AP"] == 0.5 and r["AR500"] == 0.5 and r["n_gt"] == 1 and r["n_gt_ignore"] == 1
    # The same detection on a regular object of that size would be a false positive at IoU 64/100 < 0.65: ranked
    # first it costs precision at 7 of 10 thresholds where it is a FP... so ignore objects matter.
    gt[0][4] = 1
    assert one_image(gt, dets)["AP"] != 0.5


def test_rule_greedy_matching_ties_go_to_the_later_object():
    # Cars A [8 10 10 10] and B [12 10 10 10] (file order A, B); detection 1 [10 10 10 10] (score .9) overlaps both
    # with IoU 80/120 = 2/3: evalRes.m keeps scanning on equal overlap (`oa < bstOa` skips), so B, the later one,
    # is taken. Detection 2 [13 10 10 10] (score .8) then has B taken and A at IoU 50/150 < 0.5: a false positive.
    # At IoU 0.5: rec [1/2, 1/2], prec [1, 1/2] -> AP50 = 1/2. With the objects listed B, A, detection 1 takes A and
    # detection 2 takes B (IoU 90/110): AP50 = 1.
    a, b = [8, 10, 10, 10, 1, 4], [12, 10, 10, 10, 1, 4]
    dets = [[10, 10, 10, 10, 0.9, 4], [13, 10, 10, 10, 0.8, 4]]
    assert one_image([a, b], dets)["AP50"] == 0.5
    assert one_image([b, a], dets)["AP50"] == 1.0


def test_rule_voc_all_point_ap():
    # Three cars, detections TP, FP, TP (third car missed): rec [1/3, 1/3, 2/3], prec [1, 1/2, 2/3]. VOCap: the
    # precision envelope is 1 up to recall 1/3 and 2/3 up to 2/3 -> AP = 1/3 * 1 + 1/3 * 2/3 = 5/9 = 0.5556 at every
    # IoU (COCO's 101 points would give (34 + 33 * 2/3) / 101 = 0.5545).
    gt = [[10, 10, 10, 10, 1, 4], [30, 30, 10, 10, 1, 4], [60, 60, 10, 10, 1, 4]]
    dets = [[10, 10, 10, 10, 0.9, 4], [80, 10, 10, 10, 0.8, 4], [30, 30, 10, 10, 0.7, 4]]
    assert one_image(gt, dets)["AP"] == pytest.approx(5 / 9, abs=1e-12)


def test_rule_classes_weigh_by_images_containing_them():
    # Cars in both images, found exactly (AP 1); a van in image 1 only, missed (AP 0). calcAccuracy.m averages one
    # entry per (image, class present): (1 + 1 + 0) / 3 = 2/3 (equal class weights would give 1/2).
    gts = [[[10, 10, 20, 20, 1, 4], [50, 50, 20, 20, 1, 5]], [[10, 10, 20, 20, 1, 4]]]
    dets = [[[10, 10, 20, 20, 0.9, 4]], [[10, 10, 20, 20, 0.9, 4]]]
    r = toolkit_ours(gts, dets, [(100, 100)] * 2)
    assert r["AP"] == pytest.approx(2 / 3) and r["AR500"] == pytest.approx(2 / 3)
    assert [(c["id"], c["n_images"]) for c in r["per_class"] if c["n_images"]] == [(4, 2), (5, 1)]


def test_iou_thresholds_are_matlab_colon_values():
    # 0.5:0.05:0.95 in MATLAB: first half a + k*step, second half b - (n-k)*step.
    assert IOU_THRS.tolist() == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.95 - 3 * 0.05, 0.95 - 2 * 0.05, 0.95 - 0.05, 0.95]
    assert math.isclose(IOU_THRS[5], 0.75)
