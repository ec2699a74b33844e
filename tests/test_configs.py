"""The config generator: shipped files equal its output, rows re-indexed right, placements where they claim to be."""

from __future__ import annotations

import re

import pytest
import yaml

from yolo_ema.configs import (
    ConfigError,
    Spec,
    config_dir,
    find_config,
    generate,
    main,
    shipped_specs,
    ultralytics_models_dir,
)
from yolo_ema.nn.registry import LAYERS

SPECS = {s.name: s for s in shipped_specs()}
SHIPPED = sorted(p.name for p in config_dir().glob("*.yaml"))
GENERATED = {}


def _generated(name: str) -> str:
    if name not in GENERATED:
        GENERATED[name] = generate(SPECS[name])
    return GENERATED[name]


def _rows(d: dict) -> list:
    return list(d["backbone"]) + list(d["head"])


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_is_what_the_generator_makes(name):
    assert name in SPECS, f"cfg/{name} is not made by yolo_ema.configs (add its Spec or remove the file)"
    shipped, made = (config_dir() / name).read_text(encoding="utf-8"), _generated(name)
    import importlib.metadata as md

    if f"from Ultralytics {md.version('ultralytics')} " in shipped:
        assert shipped == made, f"cfg/{name} differs from the generator: run `python -m yolo_ema.configs`"
    else:  # another Ultralytics release: its baseline comments may differ, the model must not
        assert yaml.safe_load(shipped) == yaml.safe_load(made)


def test_every_spec_is_shipped():
    assert sorted(SPECS) == SHIPPED


def _to_baseline(rows: list, plugin: set) -> list:
    """Remove plugin rows, expressing every ``from`` in baseline numbering (the independent reference).

    A plugin row stands for the row it follows (its input), so a reference to it is a reference to that row.
    """
    base_of, k = [], 0
    for j, r in enumerate(rows):
        if r[2] in plugin:
            base_of.append(base_of[j - 1])
        else:
            base_of.append(k)
            k += 1
    out = []
    for j, (f, n, m, args) in enumerate(rows):
        if m in plugin:
            assert f == -1, f"row {j}: a plugin row reads the row before it"
            continue

        def back(x, j=j):
            if x < 0 and j + x < 0:
                return x  # the input image
            b = base_of[j + x] if x < 0 else base_of[x]
            return b - base_of[j] if x < 0 else b

        out.append([[back(x) for x in f] if isinstance(f, list) else back(f), n, m, args])
    return out


@pytest.mark.parametrize("name", sorted(n for n, s in SPECS.items() if not s.extend and s.placement != "in-block"))
def test_removing_plugin_rows_gives_the_baseline(name):
    spec = SPECS[name]
    d = yaml.safe_load(_generated(name))
    base = yaml.safe_load((ultralytics_models_dir() / spec.baseline).read_text())
    assert _to_baseline(_rows(d), set(LAYERS)) == _rows(base)
    assert {k: v for k, v in d.items() if k not in ("backbone", "head")} == {
        k: v for k, v in base.items() if k not in ("backbone", "head")
    }
    plugin = [(j, r) for j, r in enumerate(_rows(d)) if r[2] in LAYERS]
    assert plugin and all(r[2] == spec.layer and r[3] == list(spec.args) for _, r in plugin)
    head = _rows(d)[-1]
    if spec.placement == "neck":  # each head input is a plugin row that follows a C2f/C3/C3k2
        assert head[0] == [j for j, _ in plugin]
        assert all(_rows(d)[j - 1][2] in ("C2f", "C3", "C3k2") for j, _ in plugin)
    elif spec.placement == "head-input":  # one plugin row, right before the head, which reads it
        assert [j for j, _ in plugin] == [len(_rows(d)) - 2] and head[0] == -1
    else:  # paper: after the stride-16 block (then the stride-32 Conv) and the stride-32 block (then SPPF)
        (a, _), (b, _) = plugin
        assert a < b < len(d["backbone"])
        nxt = _rows(d)[a + 1]
        assert nxt[2] == "Conv" and nxt[3][0] == 1024 and nxt[3][2] == 2
        assert _rows(d)[b + 1][2] == "SPPF"


def test_v5_p2_paper_model_matches_the_authors_topology():
    """The authors' models/accModels/yolov5xP2EMA.yaml head, module by module, with Detect reading the C3 outputs."""
    d = yaml.safe_load(_generated("yolov5-p2-ema-paper.yaml"))
    authors_head = (  # their head rows (module, args without anchors), github.com/YOLOonMe/EMA-attention-module
        "Conv Upsample Concat C3 EMA Conv Upsample Concat C3 EMA Conv Upsample Concat C3 EMA "
        "Conv Concat C3 EMA Conv Concat C3 EMA Conv Concat C3 Detect"
    ).split()
    assert [r[2].replace("nn.", "") for r in d["head"]] == authors_head
    rows = _rows(d)
    emas = [j for j, r in enumerate(rows) if r[2] == "EMA"]
    assert all(r[3] == [32] and rows[j - 1][2] == "C3" for j, r in enumerate(rows) if r[2] == "EMA")
    detect = rows[-1][0]
    assert detect == [emas[2] - 1, emas[3] - 1, emas[4] - 1, len(rows) - 2]  # the C3s just before the EMA rows
    assert [rows[j][3][0] for j in detect] == [256, 256, 512, 1024]  # P2 (256 as the authors), P3, P4, P5
    assert rows[emas[2] - 2] == [[-1, 2], 1, "Concat", [1]]  # P2 level concatenates backbone P2
    text = _generated("yolov5-p2-ema-paper.yaml")
    assert "Detect reads the C3 outputs just before each EMA row" in text


def test_generator_errors_name_the_culprit():
    base = (ultralytics_models_dir() / "v8" / "yolov8-cls.yaml").read_text()
    with pytest.raises(ConfigError, match=r"yolov8-cls.yaml: placement 'neck' finds no C2f/C3/C3k2"):
        generate(Spec("x-ema.yaml", "v8/yolov8-cls.yaml", "EMA", (8,), "neck", title="t"), base)
    with pytest.raises(ConfigError, match=r"unknown plugin layer 'GAM'"):
        generate(Spec("x-gam.yaml", "v8/yolov8.yaml", "GAM", (), "neck", title="t"))
    no_p5 = re.sub(r"  - \[-1, 3, C2f, \[1024, True\]\]\n", "", base)
    with pytest.raises(
        ConfigError, match=r"no backbone C2f/C3/C3k2 at stride 16 and 32 \(found strides \[4, 8, 16\]\)"
    ):
        generate(Spec("x-ema-paper.yaml", "v8/yolov8-cls.yaml", "EMA", (32,), "paper", title="t"), no_p5)


def test_paper_placement_of_a_classifier_reindexes_its_head():
    base = (ultralytics_models_dir() / "v8" / "yolov8-cls.yaml").read_text()
    d = yaml.safe_load(generate(Spec("c.yaml", "v8/yolov8-cls.yaml", "EMA", (32,), "paper", title="t"), base))
    assert [r[2] for r in _rows(d)][-3:] == ["C2f", "EMA", "Classify"]
    assert _rows(d)[-1] == [-1, 1, "Classify", ["nc"]]


def test_cli_writes_once_and_checks(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert written == sorted(SPECS)
    capsys.readouterr()
    assert main(["--out", str(tmp_path)]) == 0 and capsys.readouterr().out == ""  # rerun: nothing rewritten
    (tmp_path / "yolov8-ema.yaml").write_text("nc: 1\n")
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert "yolov8-ema.yaml" in capsys.readouterr().err


def test_find_config_by_bare_name_and_local_file_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config("yolov8-ema.yaml") == str(config_dir() / "yolov8-ema.yaml")
    assert find_config("cfg/yolov8-ema.yaml") == str(config_dir() / "yolov8-ema.yaml")
    assert find_config("yolov8.yaml") is None and find_config("other/yolov8-ema.yaml") is None
    (tmp_path / "yolov8-ema.yaml").write_text("nc: 1\n")
    assert find_config("yolov8-ema.yaml") is None  # the local file is used as is


def test_v5_p2_baseline_is_the_paper_model_without_its_ema_rows():
    """yolov5-p2.yaml, the benchmark baseline of the authors' VisDrone model, differs from it only by the EMA rows."""
    paper = yaml.safe_load(_generated("yolov5-p2-ema-paper.yaml"))
    base = yaml.safe_load(_generated("yolov5-p2.yaml"))
    assert not any(r[2] in LAYERS for r in _rows(base))
    assert _to_baseline(_rows(paper), set(LAYERS)) == _rows(base)
    assert sum(r[2] == "EMA" for r in _rows(paper)) == 5  # after every head C3 but the P5 output
