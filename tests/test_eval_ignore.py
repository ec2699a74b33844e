"""VisDrone ignored-region coverage (yolo_ema.eval.ignore): exact union, the >= 50% rule, and a raster cross-check."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from yolo_ema.eval.ignore import covered_fraction, in_ignored


def test_single_region_fraction():
    assert covered_fraction([[0, 0, 10, 10]], [[5, 0, 100, 100]]).tolist() == [0.5]
    assert covered_fraction([[0, 0, 10, 10]], [[20, 20, 5, 5]]).tolist() == [0.0]
    assert covered_fraction([[0, 0, 10, 10]], [[-5, -5, 50, 50]]).tolist() == [1.0]


def test_exactly_half_is_dropped_just_under_is_kept():
    regions = [[0, 0, 5, 100]]
    assert in_ignored([[0, 0, 10, 10]], regions).tolist() == [True]  # 50% -> dropped (toolkit keeps only < 0.5)
    assert in_ignored([[0.1, 0, 10, 10]], regions).tolist() == [False]  # 49% -> kept


def test_union_not_sum():
    box = [[0, 0, 10, 10]]
    # Two identical regions, each covering 40%: the union is 40%, not 80%.
    assert covered_fraction(box, [[0, 0, 4, 10], [0, 0, 4, 10]]).tolist() == [0.4]
    assert in_ignored(box, [[0, 0, 4, 10], [0, 0, 4, 10]]).tolist() == [False]
    # Two disjoint regions of 30% each: 60% together -> dropped, though neither alone reaches 50%.
    assert np.allclose(covered_fraction(box, [[0, 0, 3, 10], [7, 0, 3, 10]]), [0.6])
    assert in_ignored(box, [[0, 0, 3, 10], [7, 0, 3, 10]]).tolist() == [True]


def test_empty_inputs():
    assert covered_fraction(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0,)
    assert covered_fraction([[0, 0, 1, 1]], np.zeros((0, 4))).tolist() == [0.0]


@settings(max_examples=60, deadline=None)
@given(
    box=st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(1, 15), st.integers(1, 15)),
    regions=st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 15), st.integers(0, 15)), max_size=5
    ),
)
def test_matches_pixel_raster(box, regions):
    """On integer boxes the exact union equals the count of painted pixels, as the toolkit's mask measures it."""
    mask = np.zeros((64, 64), dtype=bool)
    for x, y, w, h in regions:
        mask[y : y + h, x : x + w] = True
    x, y, w, h = box
    expected = mask[y : y + h, x : x + w].sum() / (w * h)
    got = covered_fraction([box], np.asarray(regions, dtype=float).reshape(-1, 4))[0]
    assert abs(got - expected) < 1e-9
