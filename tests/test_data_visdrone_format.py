"""VisDrone-DET annotation parsing and conversion: exact rows, exact errors, and a property test on random files."""

from hypothesis import given, settings
from hypothesis import strategies as st

from yolo_ema.data.visdrone_format import convert, parse


def test_parse_good_rows_trailing_comma_crlf_bom_and_blank_lines():
    text = "\ufeff684,8,273,116,0,0,0,0\r\n406,119,265,70,1,4,0,1,\r\n\r\n  \n1.5,2,3,4,1,11,1,2\n"
    rows, errors = parse(text.encode(), "a.txt")
    assert errors == []
    assert [(r.left, r.top, r.width, r.height, r.score, r.category, r.line) for r in rows] == [
        (684, 8, 273, 116, 0, 0, 1),
        (406, 119, 265, 70, 1, 4, 2),
        (1.5, 2, 3, 4, 1, 11, 5),
    ]
    assert (rows[2].truncation, rows[2].occlusion) == (1, 2)


def test_parse_reports_every_bad_row_by_file_and_line_and_keeps_the_rest():
    text = "\n".join(
        [
            "1,2,3,4,1,1,0,0",  # 1 good
            "1,2,3,4,1,1,0",  # 2 seven fields
            "1,2,x,4,1,1,0,0",  # 3 non-numeric
            "1,2,0,4,1,1,0,0",  # 4 zero width
            "1,2,3,-4,1,1,0,0",  # 5 negative height
            "1,2,3,4,1,12,0,0",  # 6 category out of range
            "1,2,3,4,1,-1,0,0",  # 7 category out of range
            "1,2,3,4,1,2.5,0,0",  # 8 non-integer category
            "1,2,nan,4,1,1,0,0",  # 9 not finite
            "1,2,3,4,1,1,0,0,9",  # 10 nine fields, last not empty
            "5,6,7,8,1,10,0,0",  # 11 good
        ]
    )
    rows, errors = parse(text, "dir/b.txt")
    assert [r.line for r in rows] == [1, 11]
    assert errors == [
        "dir/b.txt:2: expected 8 comma-separated fields, got 7",
        "dir/b.txt:3: field width is not a number: 'x'",
        "dir/b.txt:4: width and height must be > 0, got 0x4",
        "dir/b.txt:5: width and height must be > 0, got 3x-4",
        "dir/b.txt:6: category must be an integer 0..11, got 12",
        "dir/b.txt:7: category must be an integer 0..11, got -1",
        "dir/b.txt:8: category must be an integer 0..11, got 2.5",
        "dir/b.txt:9: field width is not finite: 'nan'",
        "dir/b.txt:10: expected 8 comma-separated fields, got 9",
    ]


def test_parse_undecodable_bytes_is_a_reported_row_not_a_crash():
    rows, errors = parse(b"1,2,3,4,1,1,0,0\n\xff\xfe,2,3,4,1,1,0,0\n", "c.txt")
    assert len(rows) == 1 and len(errors) == 1 and errors[0].startswith("c.txt:2: field left is not a number")


def test_convert_yolo_lines_classes_ignores_and_clipping():
    rows, _ = parse(
        "\n".join(
            [
                "10,20,30,40,1,1,0,0",  # pedestrian -> class 0
                "0,0,100,50,0,0,0,0",  # ignored region
                "5,5,10,10,1,11,0,0",  # others
                "50,50,10,10,0,4,0,0",  # car with score 0: not evaluated
                "-10,90,30,20,1,10,1,0",  # motor crossing left and bottom border: clipped to 0,90,20,10
                "300,300,5,5,1,4,0,0",  # entirely outside
            ]
        ),
        "d.txt",
    )
    conv = convert(rows, 200, 100, "d.txt")
    assert conv.labels == "0 0.125000 0.400000 0.150000 0.400000\n9 0.050000 0.950000 0.100000 0.100000\n"
    assert conv.boxes == [(1, [10.0, 20.0, 30.0, 40.0], 0.0, 0.0), (10, [0.0, 90.0, 20.0, 10.0], 1.0, 0.0)]
    assert conv.ignores == [
        ([0.0, 0.0, 100.0, 50.0], "ignored_region", 0),
        ([5.0, 5.0, 10.0, 10.0], "others", 11),
        ([50.0, 50.0, 10.0, 10.0], "score0", 4),
    ]
    assert conv.clipped == 1
    assert conv.errors == ["d.txt:6: box lies outside the 200x100 image"]


# --- property test: random files mixing good rows and garbage -------------------------------------------------------

_num = st.integers(-50, 2000).map(str) | st.floats(-50, 2000, allow_nan=False).map(lambda v: f"{v:.2f}")
_pos = st.integers(1, 500).map(str)
_good = st.tuples(_num, _num, _pos, _pos, st.sampled_from(["0", "1"]), st.integers(0, 11).map(str), _pos, _pos).map(
    lambda t: ",".join(t) + ""
)
_junk_field = st.text(alphabet=st.characters(blacklist_characters=",\n\r"), max_size=6)
_bad = st.one_of(
    st.lists(_num, min_size=0, max_size=12).filter(lambda v: len(v) not in (8, 9) and v).map(",".join),
    st.tuples(_num, _num, st.sampled_from(["0", "-3", "-0.5"]), _pos).map(lambda t: ",".join(t) + ",1,1,0,0"),
    st.sampled_from(["12", "-1", "3.5", "99"]).map(lambda c: f"1,1,5,5,1,{c},0,0"),
    st.tuples(_junk_field.filter(lambda s: not _is_float(s)), _num).map(lambda t: f"{t[0]},{t[1]},3,3,1,1,0,0"),
    st.sampled_from(["inf", "nan", "-inf"]).map(lambda v: f"1,{v},3,3,1,1,0,0"),
)


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["good", "bad", "blank"]), _good, _bad), max_size=40),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
def test_parser_never_raises_and_accounts_for_every_row(spec, newline, trailing_comma):
    lines, good_lines, bad_lines = [], [], []
    for i, (kind, good, bad) in enumerate(spec, 1):
        if kind == "good":
            lines.append(good + ("," if trailing_comma else ""))
            good_lines.append(i)
        elif kind == "bad":
            lines.append(bad)
            bad_lines.append(i)
        else:
            lines.append("   ")
    rows, errors = parse(newline.join(lines).encode(), "f.txt")
    assert [r.line for r in rows] == good_lines
    assert [int(e.split(":")[1]) for e in errors] == bad_lines
    assert all(e.startswith("f.txt:") for e in errors)
    conv = convert(rows, 640, 480, "f.txt")
    kept = conv.labels.count("\n")
    assert kept == len(conv.boxes)
    assert kept + len(conv.ignores) + len(conv.errors) == len(rows)
    for line in conv.labels.splitlines():
        cls, *xywh = line.split()
        assert 0 <= int(cls) <= 9
        assert all(0.0 <= float(v) <= 1.0 for v in xywh)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=300))
def test_parser_survives_arbitrary_bytes(data):
    rows, errors = parse(data, "x.txt")
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    nonblank = sum(1 for line in text.lstrip("\ufeff").split("\n") if line.strip())
    assert len(rows) + len(errors) == nonblank
    convert(rows, 50, 50, "x.txt")
