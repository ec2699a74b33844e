"""The dataset catalogue (datasets.yaml) and verified downloads of the archives it lists.

Each archive entry has ``name``, ``url`` and, where known, ``size`` (bytes), ``md5`` and ``sha256``; a download is
accepted only if every known value matches. Downloads resume from ``<name>.part`` and are renamed into place only
once verified, so a present archive is always a complete one.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import urllib.request
from pathlib import Path

from yolo_ema.data import fsio
from yolo_ema.resources import package_path

CATALOGUE = "datasets.yaml"


class DownloadError(RuntimeError):
    """A download failed or does not match the catalogue; names the file, URL and values."""


def catalogue_path() -> Path:
    """The datasets.yaml shipped inside the package."""
    return package_path(CATALOGUE)


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        cat = yaml.safe_load(f)
    if not isinstance(cat, dict):
        raise ValueError(f"{path}: expected a mapping of datasets, got {type(cat).__name__}")
    return cat


def load_catalogue(path: str | os.PathLike | None = None) -> dict:
    """Return the catalogue as a dict {dataset: entry} (a fresh copy: callers may change it)."""
    return copy.deepcopy(_load(Path(path) if path else catalogue_path()))


def dataset(name: str, path: str | os.PathLike | None = None) -> dict:
    """One dataset's entry: archives, splits, names, ..."""
    cat = _load(Path(path) if path else catalogue_path())
    if name not in cat:
        raise KeyError(f"dataset {name!r} is not in the catalogue (known: {', '.join(cat)})")
    return copy.deepcopy(cat[name])


def split_folders(name: str) -> dict[str, str]:
    """{split: source folder} of a dataset, in catalogue order (e.g. test -> VisDrone2019-DET-test-dev)."""
    return {split: v["folder"] for split, v in dataset(name)["splits"].items()}


def class_names(name: str) -> list[str]:
    """The dataset's class names in YOLO class order."""
    return list(dataset(name)["names"])


def file_digests(path: str | os.PathLike, algos=("md5", "sha256")) -> dict[str, str]:
    hs = {a: hashlib.new(a) for a in algos}
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            for h in hs.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hs.items()}


def verify(path: str | os.PathLike, entry: dict) -> None:
    """Raise DownloadError unless ``path`` has the size and checksums the catalogue entry knows."""
    path = Path(path)
    size = path.stat().st_size
    if entry.get("size") is not None and size != int(entry["size"]):
        raise DownloadError(f"{path}: size {size} bytes, catalogue says {entry['size']} ({entry.get('url')})")
    algos = [a for a in ("md5", "sha256") if entry.get(a)]
    if algos:
        got = file_digests(path, algos)
        for a in algos:
            if got[a] != str(entry[a]).lower():
                raise DownloadError(f"{path}: {a} {got[a]}, catalogue says {entry[a]} ({entry.get('url')})")


def download(entry: dict, dest_dir: str | os.PathLike, progress: bool = True, timeout: float = 60) -> Path:
    """Fetch one catalogue archive into ``dest_dir`` (skipped if already there and verified); return its path."""
    dest_dir = fsio.makedirs(dest_dir)
    target = dest_dir / entry["name"]
    if target.is_file():
        verify(target, entry)
        return target
    part = dest_dir / f"{entry['name']}.part"
    have = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(entry["url"], headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except OSError as e:
        raise DownloadError(f"cannot download {entry['url']}: {e}") from None
    with resp:
        status = getattr(resp, "status", None)
        if have and status != 206:  # server ignored the range: start over
            have = 0
        total = entry.get("size") or (int(resp.headers.get("Content-Length", 0)) + have) or None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=entry["name"])
        try:
            with open(part, "ab" if have else "wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    if bar:
                        bar.update(len(chunk))
        except OSError as e:
            raise DownloadError(f"download of {entry['url']} interrupted: {e} (re-run to resume)") from None
        finally:
            if bar:
                bar.close()
    try:
        verify(part, entry)
    except DownloadError:
        part.unlink()
        raise
    fsio.publish(part, target)  # verified: flushed and renamed into place
    return target
