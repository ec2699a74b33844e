"""The shipped model configs: one generator from Ultralytics' baseline YAMLs, and the lookup by bare name.

Every ``cfg/*.yaml`` is :func:`generate` applied to a :class:`Spec`: the baseline text of the installed Ultralytics
(``ultralytics/cfg/models/...``) with plugin-layer rows inserted at a placement and every ``from`` re-indexed
(negative, single and list froms, the head's inputs included). A layer that reads a row which now has plugin rows
after it reads the last of them, so the plugin output is what flows on; comments and every other row are kept.

Placements:

- ``neck``: after each C2f / C3 / C3k2 whose output the head (Detect, Segment, ...) reads.
- ``paper``: the EMA authors' placement (github.com/YOLOonMe/EMA-attention-module, ``models/yolov5s_EMA.yaml``):
  after the last backbone block at stride 16 and at stride 32, before SPPF.
- ``head-but-p5``: the authors' VisDrone model (``models/accModels/yolov5xP2EMA.yaml``): after every head block but
  the last (P5) one, with the head reading the blocks themselves (``head_reads="block"``).
- ``head-input``: after every row the head reads, whatever block makes it (a classifier's last backbone stage).
- ``in-block``: no rows inserted; every neck row of an in-block variant's parent (``C2f``) names the variant
  (``C2f_EMA``, :mod:`yolo_ema.blocks`) instead, with the same arguments.

    python -m yolo_ema.configs           # rewrite the shipped files (only those that changed)
    python -m yolo_ema.configs --check   # exit 1 naming the files that differ from what the generator makes

Torch-free: nothing here imports torch or Ultralytics.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import os
import re
import sys
import textwrap
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from yolo_ema.nn.registry import INBLOCK, LAYERS

BLOCKS = ("C2f", "C3", "C3k2")  # the CSP blocks after which plugin rows go
DOWNSAMPLE = ("Conv", "Focus")  # backbone rows that can halve the resolution (stride argument 2)

FAMILIES = {  # family -> (Ultralytics baseline under cfg/models, title)
    "yolov5": ("v5/yolov5.yaml", "YOLOv5 (Ultralytics' anchor-free head)"),
    "yolov8": ("v8/yolov8.yaml", "YOLOv8"),
    "yolov8-p2": ("v8/yolov8-p2.yaml", "YOLOv8 with the extra stride-4 P2 head (small objects)"),
    "yolo11": ("11/yolo11.yaml", "YOLO11"),
    "yolo26": ("26/yolo26.yaml", "YOLO26"),
}


class ConfigError(ValueError):
    """A baseline or spec the generator cannot turn into a config (names the file, row and value)."""


@dataclass(frozen=True)
class Spec:
    """One shipped config: ``name`` made from ``baseline`` by inserting ``layer`` rows at ``placement``."""

    name: str  # file name, e.g. "yolov8-ema.yaml" (users type a scale: yolov8s-ema.yaml)
    baseline: str  # path under ultralytics/cfg/models, e.g. "v8/yolov8.yaml"
    layer: str | None  # plugin layer name in the YAML row, e.g. "EMA"; None: the (extended) baseline itself
    args: tuple = ()  # the row's args
    placement: str = "neck"  # "neck" | "paper" | "head-but-p5" | "head-input" | "in-block"
    head_reads: str = "layer"  # the head reads the plugin rows ("layer") or the blocks before them ("block")
    title: str = ""  # first header line
    notes: tuple = ()  # extra header lines
    extend: tuple = ()  # Insert steps applied to the baseline before the plugin rows (e.g. a P2 head)


@dataclass(frozen=True)
class Insert:
    """Rows to insert after baseline row ``after``; froms ``"@k"`` name the k-th inserted row (by position)."""

    after: int
    rows: tuple  # YAML row texts like "[-1, 1, Conv, [256, 1, 1]] # P2 lateral", or "" for a blank line
    head_first: str | None = None  # "@k": prepend this inserted row to the head's inputs
    relabel: dict = field(default_factory=dict)  # baseline row -> new comment (the row index is kept in front)


# --- parsing -----------------------------------------------------------------------------------------------------------

ROW = re.compile(r"^(?P<indent>\s*)- \[(?P<body>.*)\](?P<comment>\s*#.*)?$")
FROM = re.compile(r"^\s*(\[[^\]]*\]|-?\d+)\s*,\s*(.*)$")


@dataclass
class Row:
    indent: str
    f: int | str | list  # from
    rest: str  # "n, module, args" exactly as written
    module: str
    args: list
    comment: str  # without '#' and without the leading row index (kept as written: "-P1/2", " (P3/8-small)")
    numbered: bool  # the comment started with the row index
    section: str = "head"  # "backbone" | "head"
    old: int | None = None  # baseline index, None for inserted rows


def _parse_row(line: str, where: str) -> Row | None:
    m = ROW.match(line)
    if not m:
        return None
    body, comment = m["body"], (m["comment"] or "").strip().lstrip("#").strip()
    try:
        f, n, module, args = yaml.safe_load(f"[{body}]")
    except (yaml.YAMLError, ValueError) as e:
        raise ConfigError(f"{where}: cannot read row {line.strip()!r} ({e})") from None
    fm = FROM.match(body)
    if fm is None:
        raise ConfigError(f"{where}: row {line.strip()!r} has no readable 'from' field")
    numbered = re.match(r"^(\d+)\b(.*)$", comment)
    if numbered:
        comment = numbered[2]
    return Row(m["indent"], f, fm[2], str(module), args, comment, bool(numbered))


def _parse(text: str, where: str) -> list:
    """Lines of a model YAML: Row objects for backbone/head rows, str for everything else."""
    out, section = [], None
    for k, line in enumerate(text.splitlines()):
        if re.match(r"^\w", line):
            section = line.split(":")[0]
        row = _parse_row(line, f"{where} line {k + 1}") if section in ("backbone", "head") else None
        if row is not None:
            row.section = section
        out.append(row if row is not None else line)
    rows = [r for r in out if isinstance(r, Row)]
    if not rows:
        raise ConfigError(f"{where}: no backbone/head rows found")
    for i, r in enumerate(rows):
        r.old = i
    return out


def _render_from(f) -> str:
    return f"[{', '.join(str(x) for x in f)}]" if isinstance(f, list) else str(f)


def _render(lines: list) -> str:
    out, i = [], 0
    for item in lines:
        if isinstance(item, Row):
            text = f"{item.indent}- [{_render_from(item.f)}, {item.rest}]"
            label = f"{i}{item.comment}" if item.numbered else item.comment
            out.append(f"{text} # {label}" if label else text)
            i += 1
        else:
            out.append(item)
    return "\n".join(out) + "\n"


# --- the one transformation: insert rows, re-index every from ----------------------------------------------------------


def _new_indices(rows: list, inserts: dict) -> tuple[dict, dict, dict]:
    """Where each baseline row goes once ``inserts`` are in: its new index, the index that now stands for it in the
    flow (the last row inserted after it, or itself), and the new indices of the rows inserted after it."""
    new_of, target, block_new, i = {}, {}, {}, 0
    for r in rows:
        new_of[r.old] = i
        i += 1
        added = [x for x in inserts.get(r.old, []) if isinstance(x, Row)]
        block_new[r.old] = list(range(i, i + len(added)))
        i += len(added)
        target[r.old] = block_new[r.old][-1] if added else new_of[r.old]
    return new_of, target, block_new


def _insert(lines: list, inserts: dict, head_reads: str, where: str, head_first=None) -> list:
    """Insert ``inserts[old] = [Row | str, ...]`` after baseline row ``old`` and re-index every ``from``.

    A reference to baseline row k becomes a reference to the last row inserted after k (the inserted rows take its
    place in the flow), except the head's when ``head_reads == "block"``. Inserted rows read ``-1``, a baseline index,
    or ``"@j"`` (the j-th row of the same insertion).
    """
    rows = [r for r in lines if isinstance(r, Row)]
    n_old = len(rows)
    for k in inserts:
        if not 0 <= k < n_old - 1:
            raise ConfigError(f"{where}: cannot insert after row {k} (rows 0..{n_old - 2} can be followed)")
    new_of, target, block_new = _new_indices(rows, inserts)
    head = rows[-1].old

    def ref(f, at: int, old: int | None, block: list) -> int:
        if isinstance(f, str) and f.startswith("@"):
            return block[int(f[1:])]
        if not isinstance(f, int) or isinstance(f, bool):
            raise ConfigError(f"{where}: row {at}: 'from' entry {f!r} is not a layer index")
        if f < 0:
            if old is None:  # an inserted row
                if f != -1:
                    raise ConfigError(f"{where}: inserted row {at}: 'from' {f}: use -1, a baseline index or '@j'")
                return -1
            base = (old if old is not None else -1) + f  # the baseline row it names
            if base == -1 and at == 0:
                return -1  # the first row reads the input image
            if base < 0:
                raise ConfigError(f"{where}: row {old}: 'from' {f} names no earlier row")
            return (new_of if old == head and head_reads == "block" else target)[base] - at
        if f >= n_old:
            raise ConfigError(f"{where}: row {at}: 'from' {f} is past the last row {n_old - 1}")
        return (new_of if old == head and head_reads == "block" else target)[f]

    def reindex(r: Row, at: int, block: list) -> Row:
        fs = r.f if isinstance(r.f, list) else [r.f]
        new = [ref(f, at, r.old, block) for f in fs]
        if r.old == head and head_first is not None:  # "@k" of the (single) insertion
            new = [ref(head_first, at, None, block_new[next(iter(inserts))])] + new
        return replace(r, f=new if isinstance(r.f, list) else new[0])

    if head_first is not None and len(inserts) != 1:
        raise ConfigError(f"{where}: a new head input needs exactly one insertion, got {len(inserts)}")
    out = []
    for item in lines:
        if not isinstance(item, Row):
            out.append(item)
            continue
        out.append(reindex(item, new_of[item.old], []))
        added = inserts.get(item.old, [])
        pos = iter(block_new[item.old])
        for x in added:
            out.append(reindex(x, next(pos), block_new[item.old]) if isinstance(x, Row) else x)
    return out


def _stride_blocks(rows: list, backbone_len: int) -> dict:
    """The last backbone block (C2f/C3/C3k2) at each stride: {16: index, 32: index, ...}."""
    stride, last = 1, {}
    for r in rows[:backbone_len]:
        if r.module in DOWNSAMPLE and (r.module == "Focus" or (len(r.args) > 2 and r.args[2] == 2)):
            stride *= 2
        if r.module in BLOCKS:
            last[stride] = r.old
    return last


def _placement(spec: Spec, lines: list, where: str) -> list:
    rows = [r for r in lines if isinstance(r, Row)]
    backbone_len = sum(r.section == "backbone" for r in rows)
    head = rows[-1]
    if spec.placement == "neck":
        ins = [f for f in (head.f if isinstance(head.f, list) else [head.f]) if rows[f].module in BLOCKS]
    elif spec.placement == "paper":
        last = _stride_blocks(rows, backbone_len)
        if 16 not in last or 32 not in last:
            raise ConfigError(f"{where}: no backbone C2f/C3/C3k2 at stride 16 and 32 (found strides {sorted(last)})")
        ins = [last[16], last[32]]
    elif spec.placement == "head-but-p5":
        ins = [r.old for r in rows[backbone_len:] if r.module in BLOCKS][:-1]
    elif spec.placement == "head-input":
        ins = [head.old + f if f < 0 else f for f in (head.f if isinstance(head.f, list) else [head.f])]
    else:
        raise ConfigError(f"{where}: unknown placement {spec.placement!r} (neck, paper, head-but-p5, head-input)")
    if not ins:
        raise ConfigError(f"{where}: placement {spec.placement!r} finds no C2f/C3/C3k2 row to follow")
    return sorted(ins)


def ultralytics_models_dir() -> Path:
    """``ultralytics/cfg/models`` of the installed Ultralytics (found without importing it)."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("ultralytics is not installed: the baseline model YAMLs come from it")
    return Path(next(iter(spec.submodule_search_locations))) / "cfg" / "models"


def _body(text: str) -> list:
    """Baseline text without its leading comment block (licence and description lines)."""
    lines = text.splitlines()
    k = 0
    while k < len(lines) and (lines[k].startswith("#") or not lines[k].strip()):
        k += 1
    return lines[k:]


def generate(spec: Spec, baseline_text: str | None = None) -> str:
    """The config text for ``spec``: header, then the baseline with plugin rows inserted and froms re-indexed."""
    where = f"ultralytics/cfg/models/{spec.baseline}"
    if baseline_text is None:
        baseline_text = (ultralytics_models_dir() / spec.baseline).read_text(encoding="utf-8")
    if spec.layer is not None and spec.layer not in LAYERS and spec.layer not in INBLOCK:
        known = ", ".join([*LAYERS, *INBLOCK])
        raise ConfigError(f"{spec.name}: unknown plugin layer {spec.layer!r} (known: {known})")
    if (spec.layer in INBLOCK) != (spec.placement == "in-block"):
        raise ConfigError(f"{spec.name}: placement 'in-block' goes with the in-block layers {', '.join(INBLOCK)} only")
    lines = _parse("\n".join(_body(baseline_text)), where)
    for ext in spec.extend:  # structural extensions (extra head levels) first, as if they were the baseline
        rows = {ext.after: [_parse_row(f"  - {t}", f"{spec.name} extension") if t else "" for t in ext.rows]}
        for r in lines:
            if isinstance(r, Row) and r.old in ext.relabel:
                r.comment = ext.relabel[r.old]
        lines = _parse(_render(_insert(lines, rows, "layer", where, ext.head_first)), where)
    if spec.layer is None:  # an extended baseline with no plugin rows (the comparison model of a paper config)
        return (
            _wrap(
                [
                    spec.title,
                    *spec.notes,
                    *_provenance(spec, "the P2 head rows are inserted and every 'from' re-indexed"),
                ]
            )
            + "\n"
            + _clean_scales(_render(lines), spec.name)
        )
    if spec.placement == "in-block":
        return _in_block(spec, lines, where)
    after = _placement(spec, lines, where)
    args = list(spec.args)
    named = ", ".join(f"{k} {v}" for k, v in zip(LAYERS[spec.layer].hyper, args))
    label = spec.layer + (f" ({named})" if args else "")
    row = f"  - [-1, 1, {spec.layer}, {args}] # 0 {label} on the output above"
    out = _insert(lines, {k: [_parse_row(row, spec.name)] for k in after}, spec.head_reads, where)
    return _header(spec, out, after) + "\n" + _clean_scales(_render(out), spec.name)


def _in_block(spec: Spec, lines: list, where: str) -> str:
    """Config text with every neck row of the variant's parent naming the variant instead (args unchanged)."""
    parent, who = INBLOCK[spec.layer].parent, INBLOCK[spec.layer].paper
    rows = [r for r in lines if isinstance(r, Row) and r.section == "head" and r.module == parent]
    if not rows:
        raise ConfigError(f"{where}: no {parent} row in the head to make {spec.layer}")
    for r in rows:
        r.rest, r.module = re.sub(rf"^(\s*\S+\s*,\s*){parent}\b", rf"\g<1>{spec.layer}", r.rest), spec.layer
    text = [
        spec.title,
        f"{who} in place of every neck {parent}: rows {', '.join(str(r.old) for r in rows)}.",
        *spec.notes,
        f"Generated by `python -m yolo_ema.configs` from Ultralytics {_ultralytics_version()} "
        f"cfg/models/{spec.baseline} (AGPL-3.0): those rows name {spec.layer} with the baseline's arguments; all "
        "other rows are the baseline's. Do not edit by hand.",
        f"Type a scale (n/s/m/l/x): model={_scaled(spec.name, 's')} is the s scale of this file, found by bare name "
        "from any folder once yolo-ema is installed.",
        f"{spec.layer} rows are scaled exactly as {parent} rows at every scale by the yolo-ema plugin, "
        f"and {parent} weights load into them unchanged (each bottleneck's EMA starts fresh); EMA factor 8 (see "
        "yolo_ema/blocks.py).",
        "Params and GFLOPs of this model at each scale: the README's config table (scripts/config_table.py).",
    ]
    return _wrap(text) + "\n" + _clean_scales(_render(lines), spec.name)


def _scaled(name: str, s: str = "n") -> str:
    """yolov8-ema.yaml -> yolov8n-ema.yaml (Ultralytics' rule: the scale letter follows the version digits)."""
    return re.sub(r"^(yolov?\d+)", rf"\g<1>{s}", name)


def _clean_scales(body: str, name: str) -> str:
    """Drop the baseline's per-scale summaries (they count the baseline, not this model) and name this file."""
    out = []
    for line in body.splitlines():
        if re.match(r"^\s+[nslmx]: \[", line):
            line = line.split("#")[0].rstrip()
        elif line.startswith("scales:"):
            line = (
                f"scales: # model compound scaling constants, i.e. 'model={_scaled(name)}' uses this file at scale 'n'"
            )
        out.append(line)
    return "\n".join(out) + "\n"


def _header(spec: Spec, out: list, after: list) -> str:
    """Comment lines saying what the file is, where the plugin rows sit and where it came from."""
    rows = [r for r in out if isinstance(r, Row)]
    inserted = [i for i, r in enumerate(rows) if r.old is None]
    by_old = {r.old: r for r in rows if r.old is not None}
    blocks = "/".join(sorted({by_old[k].module for k in after}))
    head = rows[-1].module
    where = {
        "neck": f"after each neck {blocks} that feeds {head}",
        "paper": f"after the last backbone {blocks} at stride 16 and at stride 32, before SPPF (the EMA authors' "
        "placement: their models/yolov5s_EMA.yaml)",
        "head-but-p5": f"after every head {blocks} but the P5 output",
        "head-input": f"after the last backbone stage ({blocks}), on the map {head} reads",
    }[spec.placement]
    note = (LAYERS[spec.layer].note or "{layer} rows give only hyperparameters ({args})").format(
        layer=spec.layer, args=list(spec.args) or "none: the paper's defaults"
    )
    text = [
        spec.title,
        f"{LAYERS[spec.layer].paper} {where}: rows {', '.join(map(str, inserted))}.",
        *spec.notes,
        *_provenance(spec),
        f"Input channels of plugin rows are inferred at every scale by the yolo-ema plugin; {note}.",
        "Params and GFLOPs of this model at each scale: the README's config table (scripts/config_table.py).",
    ]
    return _wrap(text)


def _provenance(spec: Spec, change: str = "the plugin rows are inserted and every 'from' re-indexed") -> list:
    """Header paragraphs naming the generator, the Ultralytics baseline file and how users type the name."""
    return [
        f"Generated by `python -m yolo_ema.configs` from Ultralytics {_ultralytics_version()} "
        f"cfg/models/{spec.baseline} (AGPL-3.0): {change}; all other rows are the baseline's. Do not edit by hand.",
        f"Type a scale (n/s/m/l/x): model={_scaled(spec.name, 's')} is the s scale of this file, found by bare name "
        "from any folder once yolo-ema is installed.",
    ]


def _wrap(text: list) -> str:
    """Header paragraphs as ``# `` comment lines of at most 120 characters."""
    wrap = textwrap.TextWrapper(width=118, break_long_words=False, break_on_hyphens=False)
    return "".join(f"# {line}\n" for para in text for line in wrap.wrap(para))


def _ultralytics_version() -> str:
    try:
        return md.version("ultralytics")
    except md.PackageNotFoundError:
        return "(not installed)"


# --- the shipped set ---------------------------------------------------------------------------------------------------

V5_P2_HEAD = Insert(  # the authors' YOLOv5 P2 head (models/accModels/yolov5xP2.yaml), after the P3 top-down C3
    after=17,
    rows=(
        "",
        "[-1, 1, Conv, [256, 1, 1]]",
        '[-1, 1, nn.Upsample, [None, 2, "nearest"]]',
        "[[-1, 2], 1, Concat, [1]] # cat backbone P2",
        "[-1, 3, C3, [256, False]] # 0 (P2/4-xsmall)",
        "",
        "[-1, 1, Conv, [256, 3, 2]]",
        '[[-1, "@0"], 1, Concat, [1]] # cat head P3',
        "[-1, 3, C3, [256, False]] # 0 (P3/8-small)",
    ),
    head_first="@3",
    relabel={17: "", 24: "Detect(P2, P3, P4, P5)"},  # comments after the row index (if the baseline gives one)
)

V5_P2_NOTES = (
    "The EMA authors' VisDrone model (github.com/YOLOonMe/EMA-attention-module, models/accModels/yolov5xP2EMA.yaml; "
    "their VisDrone runs use scale x): their P2 head (a 256-channel P2 level, as in their yolov5xP2.yaml) and EMA "
    "with their default factor 32 after every head C3 but the P5 output. Detect reads the C3 outputs just before "
    "each EMA row, as in their file: EMA changes only what flows on to the next stage, never a Detect input directly.",
    "Differences from their file: Ultralytics' YOLOv5 v6.0 backbone (6x6 stem conv, C3 then SPPF) and anchor-free "
    "Detect instead of v5.0's Focus/SPP and anchors; the bottom-up P3/P4 concatenations read the lateral 1x1 convs "
    "as in their baseline yolov5xP2.yaml (their EMA file keeps the unshifted indices 18 and 14, which there name the "
    "P3 C3 before its EMA and the P4 EMA output).",
)


TASKS = {  # Ultralytics task suffix -> (task, placement, why EMA sits there); EMA's args at that placement
    "seg": (
        "instance segmentation",
        "neck",
        "Why here: Segment predicts boxes, classes and mask coefficients from these three maps, and its Proto branch "
        "builds the masks from the P3 map, so EMA's per-pixel cross-spatial weights reach both the instance "
        "coefficients and the mask prototypes.",
    ),
    "pose": (
        "pose estimation",
        "neck",
        "Why here: Pose regresses keypoints from these three maps; EMA's directional (H and W) pooling keeps position "
        "along each axis in its channel weights, the information keypoint offsets are read from.",
    ),
    "obb": (
        "oriented boxes",
        "neck",
        "Why here: OBB predicts boxes and their angle from these three maps; aerial scenes (DOTA) are dominated by "
        "small, densely packed objects, and EMA re-weights the stride-8 map that finds them as well as the coarser "
        "ones.",
    ),
    "cls": (
        "classification",
        "head-input",
        "Why here: Classify averages one map, the last backbone stage (stride 32), over all positions; EMA on that map "
        "re-weights the positions first, turning the global average pool into an attention-weighted pool. Factor 32 "
        "(the official default): the 256-1280 channels there give 8-40 channels per group at every scale.",
    ),
}


def task_specs() -> list:
    """EMA configs for every Ultralytics task of the YOLOv8 and YOLO11 families (``yolov8-seg-ema.yaml``, ...)."""
    specs = []
    for family in ("yolov8", "yolo11"):
        baseline, title = FAMILIES[family]
        for suffix, (task, placement, why) in TASKS.items():
            specs.append(
                Spec(
                    f"{family}-{suffix}-ema.yaml",
                    baseline.replace(".yaml", f"-{suffix}.yaml"),
                    "EMA",
                    LAYERS["EMA"].args[placement],
                    placement,
                    title=f"yolo-ema: {title} {task}; EMA where the {task} head reads",
                    notes=(why,),
                )
            )
    return specs


def in_block_specs() -> list:
    """The in-block variants in the neck: ``yolov8-c2f-ema.yaml`` and ``yolo11-c3k2-ema.yaml``."""
    return [
        Spec(
            f"{family}-{layer.split('_')[0].lower()}-ema.yaml",
            FAMILIES[family][0],
            layer,
            placement="in-block",
            title=f"yolo-ema: {FAMILIES[family][1]}; EMA inside the bottlenecks of the neck's {INBLOCK[layer].parent} blocks",
        )
        for family, layer in (("yolov8", "C2f_EMA"), ("yolo11", "C3k2_EMA"))
    ]


PLACEMENTS = (  # (placement, file name suffix, title) of every plugin layer's configs in each family
    ("neck", "", "in the neck"),
    ("paper", "-paper", "in the backbone (the EMA paper's placement)"),
)


def shipped_specs() -> list:
    """Every config shipped in ``yolo_ema/cfg``: detection families x plugin layers x placements, tasks, in-block."""
    specs = []
    for family, (baseline, title) in FAMILIES.items():
        for layer in ("EMA", *(a for a in LAYERS if a != "EMA")):
            for placement, suffix, where in PLACEMENTS:
                specs.append(
                    Spec(
                        f"{family}-{layer.lower()}{suffix}.yaml",
                        baseline,
                        layer,
                        LAYERS[layer].args[placement],
                        placement,
                        title=f"yolo-ema: {title}; {layer} {where}",
                    )
                )
    specs.append(
        Spec(
            "yolov5-p2.yaml",
            "v5/yolov5.yaml",
            None,
            title="yolo-ema: YOLOv5 with the EMA authors' P2 (stride 4) head and no attention, the baseline of "
            "yolov5-p2-ema-paper.yaml (their models/accModels/yolov5xP2.yaml)",
            notes=V5_P2_NOTES[1:],
            extend=(V5_P2_HEAD,),
        )
    )
    specs.append(
        Spec(
            "yolov5-p2-ema-paper.yaml",
            "v5/yolov5.yaml",
            "EMA",
            LAYERS["EMA"].args["head-but-p5"],
            "head-but-p5",
            head_reads="block",
            title="yolo-ema: YOLOv5 with a P2 (stride 4) head and EMA, the EMA authors' VisDrone model",
            notes=V5_P2_NOTES,
            extend=(V5_P2_HEAD,),
        )
    )
    return specs + task_specs() + in_block_specs()


# --- lookup by bare name -----------------------------------------------------------------------------------------------


def config_dir() -> Path:
    """The folder of shipped configs (``yolo_ema/cfg``)."""
    from yolo_ema.resources import package_path

    return package_path("cfg")


def shipped_names() -> list:
    """File names of the shipped configs, e.g. ``yolov8-ema.yaml``."""
    return sorted(p.name for p in config_dir().glob("*.yaml"))


def find_config(file) -> str | None:
    """The shipped config a name refers to, or None.

    ``file`` is what a user or Ultralytics passes to its file lookup: a bare name (``yolov8-ema.yaml``) or
    ``cfg/<name>`` as in a checkout. A file of that path that exists where it is looked up is not ours to replace
    (None), so a local file of the same name wins, as in Ultralytics.
    """
    s = str(file).strip()
    if not s.endswith((".yaml", ".yml")) or "://" in s or os.path.exists(s):
        return None
    p = Path(s)
    if p.parent not in (Path("."), Path("cfg")):
        return None
    try:
        path = config_dir() / p.name
    except FileNotFoundError:
        return None
    return str(path) if path.is_file() else None


def with_shipped_configs(check_file):
    """Ultralytics' ``check_file`` extended to find the shipped configs by bare name (after a local file, before its
    own folders); the seam installs it."""

    def check_file_or_shipped(file, *args, **kwargs):
        found = find_config(file) if isinstance(file, (str, os.PathLike)) else None
        return found or check_file(file, *args, **kwargs)

    return check_file_or_shipped


def user_names(scale: str = "s") -> list:
    """What users type for each shipped config at ``scale`` (yolov8s-ema.yaml, ...)."""
    return [_scaled(n, scale) for n in shipped_names()]


# --- command line ------------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m yolo_ema.configs", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 naming files that differ")
    ap.add_argument("--out", type=Path, default=None, help="folder to write (default: the shipped yolo_ema/cfg)")
    args = ap.parse_args(argv)
    from yolo_ema.data.fsio import write_text

    out = args.out or config_dir()
    differ = []
    for spec in shipped_specs():
        text, path = generate(spec), out / spec.name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                differ.append(spec.name)
        elif write_text(path, text):
            print(f"wrote {path}")
    if differ:
        print(f"differ from the generator: {', '.join(differ)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
