"""datasets.yaml contents and verified downloads (file:// URLs stand in for the network)."""

import hashlib

import pytest

from yolo_ema.data import catalogue
from yolo_ema.data.catalogue import DownloadError


def test_catalogue_lists_the_three_datasets_with_their_classes_and_splits():
    cat = catalogue.load_catalogue()
    assert catalogue.catalogue_path().name == "datasets.yaml"
    assert set(cat) >= {"visdrone", "coco", "synthetic"}
    vd = cat["visdrone"]
    assert vd["names"] == ["pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle", "awning-tricycle", "bus", "motor"]  # fmt: skip
    assert catalogue.class_names("visdrone") == vd["names"]
    assert catalogue.split_folders("visdrone") == {s: v["folder"] for s, v in vd["splits"].items()}
    assert {s: v["images"] for s, v in vd["splits"].items()} == {"train": 6471, "val": 548, "test": 1610}
    assert vd["splits"]["test"]["folder"] == "VisDrone2019-DET-test-dev"
    assert [a["name"] for a in vd["archives"]] == [f"{v['folder']}.zip" for v in vd["splits"].values()]
    coco = cat["coco"]
    assert len(coco["names"]) == 80 and coco["names"][0] == "person" and coco["names"][-1] == "toothbrush"
    val = next(a for a in coco["archives"] if a["name"] == "val2017.zip")
    assert (val["size"], val["md5"]) == (815585330, "442b8da7639aecaf257c1dceb8ba8c80")
    for entry in cat.values():
        assert entry["license"] and entry["citation"]
        for a in entry["archives"]:
            assert a["url"].startswith(("http://", "https://")) and a["url"].endswith(a["name"])


def _entry(tmp_path, data: bytes, **over):
    src = tmp_path / "remote" / "thing.zip"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(data)
    entry = {
        "name": "thing.zip",
        "url": src.as_uri(),
        "size": len(data),
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    entry.update(over)
    return entry


def test_download_verifies_and_skips_when_present(tmp_path):
    data = b"archive bytes" * 1000
    entry = _entry(tmp_path, data)
    p = catalogue.download(entry, tmp_path / "dl", progress=False)
    assert p.read_bytes() == data and not (tmp_path / "dl/thing.zip.part").exists()
    (tmp_path / "remote/thing.zip").unlink()  # a second call must not need the network
    assert catalogue.download(entry, tmp_path / "dl", progress=False) == p


@pytest.mark.parametrize("field,value,message", [("size", 5, "size 13000 bytes, catalogue says 5"),
                                                 ("md5", "0" * 32, "md5 "), ("sha256", "f" * 64, "sha256 ")])  # fmt: skip
def test_download_with_wrong_size_or_checksum_is_refused_and_not_kept(tmp_path, field, value, message):
    entry = _entry(tmp_path, b"archive bytes" * 1000, **{field: value})
    with pytest.raises(DownloadError, match=message):
        catalogue.download(entry, tmp_path / "dl", progress=False)
    assert list((tmp_path / "dl").iterdir()) == []


def test_unknown_checksums_only_need_the_file(tmp_path):
    entry = _entry(tmp_path, b"x" * 10, size=None, md5=None, sha256=None)
    assert catalogue.download(entry, tmp_path / "dl", progress=False).read_bytes() == b"x" * 10


def test_unreachable_url_is_a_clear_error(tmp_path):
    entry = {"name": "a.zip", "url": (tmp_path / "missing.zip").as_uri()}
    with pytest.raises(DownloadError, match="cannot download file://"):
        catalogue.download(entry, tmp_path / "dl", progress=False)


def test_synthetic_defaults_in_catalogue_match_the_generator():
    from yolo_ema.data import synthetic

    d = catalogue.dataset("synthetic")["defaults"]
    assert (d["images"], d["size"]) == (synthetic.DEFAULT_IMAGES, synthetic.DEFAULT_SIZE)


def test_package_path_finds_shipped_files_and_names_a_missing_one():
    from yolo_ema.resources import package_path

    assert package_path("datasets.yaml").is_file()
    assert package_path("cfg").is_dir()
    with pytest.raises(FileNotFoundError, match="no-such.yaml"):
        package_path("cfg", "no-such.yaml")
