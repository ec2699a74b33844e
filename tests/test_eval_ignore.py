"""VisDrone ignored-region coverage (yolo_ema.eval.ignore) on the DET toolkit's pixel grid (dropObjectsInIgr.m)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from yolo_ema.eval.ignore import covered_fraction, in_ignored, matlab_round


def test_single_region_fraction():
    # Region [6 1 100 100] in a 200x200 image paints columns 6..106, rows 1..101. Box [1 1 10 10] counts columns
    # 2..11 and rows 2..11: columns 6..11 are painted -> 6 x 10 / 100 = 0.6 (continuous geometry: 0.5).
    assert covered_fraction([[1, 1, 10, 10]], [[6, 1, 100, 100]], 200, 200).tolist() == [0.6]
    assert covered_fraction([[1, 1, 10, 10]], [[20, 20, 5, 5]], 200, 200).tolist() == [0.0]
    # Region at the origin: max(1, .) gives [1 1 50 50]: rows/columns 1..51 cover the box's 2..11 fully.
    assert covered_fraction([[0, 0, 10, 10]], [[-5, -5, 50, 50]], 200, 200).tolist() == [1.0]


def test_exactly_half_is_dropped_just_under_is_kept():
    # Region [7 1 5 100] paints columns 7..12: box columns 2..11 -> 5 of 10 -> 0.5 -> dropped (kept only if < 0.5).
    assert in_ignored([[1, 1, 10, 10]], [[7, 1, 5, 100]], 100, 100).tolist() == [True]
    # Region from column 8: 4 of 10 -> kept.
    assert in_ignored([[1, 1, 10, 10]], [[8, 1, 5, 100]], 100, 100).tolist() == [False]


def test_union_not_sum():
    box = [[1, 1, 10, 10]]
    # Two identical regions painting columns 1..4 (of the box's 2..11: 3 columns): the union is 30%, not 60%.
    assert covered_fraction(box, [[1, 1, 3, 20], [1, 1, 3, 20]], 100, 100).tolist() == [0.3]
    # Columns 1..4 and 9..12: 3 + 3 columns of the box -> 60% together -> dropped, though neither alone is 50%.
    assert covered_fraction(box, [[1, 1, 3, 20], [9, 1, 3, 20]], 100, 100).tolist() == [0.6]
    assert in_ignored(box, [[1, 1, 3, 20], [9, 1, 3, 20]], 100, 100).tolist() == [True]


def test_clamped_to_image_but_area_is_not():
    # Box [95 95 10 10] in a 100x100 image counts rows/columns 96..100 (clamped); the region paints 90..100; the
    # covered 25 pixels are divided by the unclipped w*h = 100.
    assert covered_fraction([[95, 95, 10, 10]], [[90, 90, 10, 10]], 100, 100).tolist() == [0.25]
    # A region starting past the image paints nothing.
    assert covered_fraction([[1, 1, 10, 10]], [[120, 1, 10, 10]], 100, 100).tolist() == [0.0]


def test_matlab_round():
    assert matlab_round(np.array([0.5, 1.5, 2.5, -0.5, -2.5, 2.49])).tolist() == [1, 2, 3, -1, -3, 2]


def test_empty_inputs():
    assert covered_fraction(np.zeros((0, 4)), [[0, 0, 1, 1]], 10, 10).shape == (0,)
    assert covered_fraction([[0, 0, 1, 1]], np.zeros((0, 4)), 10, 10).tolist() == [0.0]


@settings(max_examples=80, deadline=None)
@given(
    box=st.tuples(
        st.floats(-5, 40, allow_nan=False), st.floats(-5, 40, allow_nan=False), st.floats(0, 20), st.floats(0, 20)
    ),
    regions=st.lists(
        st.tuples(st.integers(-3, 40), st.integers(-3, 40), st.integers(0, 15), st.integers(0, 15)), max_size=5
    ),
    size=st.tuples(st.integers(5, 40), st.integers(5, 40)),
)
def test_matches_painted_mask(box, regions, size):
    """A literal mask painted as dropObjectsInIgr.m paints it; the box's pixels counted by slicing, not corners."""
    W, H = size
    mask = np.zeros((H + 1, W + 1), dtype=bool)  # index = 1-based pixel
    for x, y, w, h in regions:
        x, y, w, h = max(1, x), max(1, y), max(1, w), max(1, h)
        mask[y : min(H, y + h) + 1, x : min(W, x + w) + 1] = True
    pos = [max(1, int(np.floor(abs(v) + 0.5) * np.sign(v))) for v in box]
    x, y = min(max(pos[0], 1), W), min(max(pos[1], 1), H)
    w, h = pos[2], pos[3]
    x2, y2 = min(W, x + w), min(max(y + h, 1), H)
    expected = mask[y + 1 : y2 + 1, x + 1 : x2 + 1].sum() / (w * h)
    got = covered_fraction([box], np.asarray(regions, dtype=float).reshape(-1, 4), W, H)[0]
    assert got == expected
