"""Header-only image size as Ultralytics sees it (EXIF orientation) and the integrity checks (empty, truncated,
wrong extension, too small); Ultralytics' own check_image is the reference for sizes."""

import io
import struct

import pytest
from PIL import Image

from yolo_ema.data.imagesize import BadImage, read_size


def _save(path, fmt, size=(123, 45), **kw):
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, fmt, **kw)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


@pytest.mark.parametrize(
    "name,fmt,kw",
    [
        ("a.jpg", "JPEG", {}),
        ("a.jpeg", "JPEG", {"progressive": True}),
        ("a.JPG", "JPEG", {"exif": b"Exif\x00\x00" + b"\x00" * 5000}),  # SOF after a big APP1 segment
        ("a.png", "PNG", {}),
        ("a.bmp", "BMP", {}),
        ("a.webp", "WEBP", {}),
    ],
)
def test_sizes_match_pillow(tmp_path, name, fmt, kw):
    p = tmp_path / name
    _save(p, fmt, **kw)
    assert read_size(p) == (123, 45)


def test_jpeg_with_trailing_padding_is_accepted(tmp_path):
    p = tmp_path / "pad.jpg"
    p.write_bytes(_save(p, "JPEG") + b"\x00" * 10)
    assert read_size(p) == (123, 45)


@pytest.mark.parametrize(
    "name,make,reason",
    [
        ("zero.jpg", lambda d: b"", "empty file (0 bytes)"),
        (
            "cut.jpg",
            lambda d: d["jpg"][: len(d["jpg"]) // 2],
            "truncated JPEG (no end marker and the pixels do not decode)",
        ),
        ("cuthead.jpg", lambda d: d["jpg"][:40], "truncated JPEG header (no SOF marker)"),
        ("cut.png", lambda d: d["png"][: len(d["png"]) - 30], "corrupt PNG (OSError: Truncated File Read)"),
        ("png.jpg", lambda d: d["png"], "content is PNG but the extension is .jpg"),
        ("jpg.png", lambda d: d["jpg"], "content is JPEG but the extension is .png"),
        ("bmp.jpg", lambda d: d["bmp"], "content is BMP but the extension is .jpg"),
        ("text.jpg", lambda d: b"hello, not an image" * 10, "not a readable image ("),
    ],
)
def test_bad_images_are_rejected_with_a_reason(tmp_path, name, make, reason):
    data = {}
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("BMP", "bmp")):
        buf = io.BytesIO()
        Image.effect_noise((200, 150), 60).convert("RGB").save(buf, fmt)
        data[ext] = buf.getvalue()
    p = tmp_path / name
    p.write_bytes(make(data))
    with pytest.raises(BadImage) as e:
        read_size(p)
    assert str(e.value).startswith(reason)


def test_tiny_image_is_rejected_like_ultralytics_does(tmp_path):
    p = tmp_path / "tiny.jpg"
    _save(p, "JPEG", size=(9, 40))
    with pytest.raises(BadImage, match="image size 9x40 is under 10 px"):
        read_size(p)
    assert read_size(p, check=False) == (9, 40)


def _exif(orientation: int, order: str) -> bytes:
    """An Exif APP1 payload whose IFD0 holds a make string, then the orientation (byte order II or MM)."""
    e = "<" if order == "II" else ">"
    entries = struct.pack(e + "HHI4s", 0x010F, 2, 4, b"cam\0") + struct.pack(e + "HHIHH", 274, 3, 1, orientation, 0)
    return b"Exif\0\0" + order.encode() + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", 2) + entries + b"\0" * 4


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif")])
@pytest.mark.parametrize("order", ["II", "MM"])
def test_exif_orientation_gives_the_size_ultralytics_trains_on(tmp_path, fmt, ext, order):
    from ultralytics.data.utils import check_image

    for orientation in range(1, 9):
        p = tmp_path / f"o{orientation}.{ext}"
        Image.new("RGB", (120, 45), (10, 200, 30)).save(p, fmt, exif=_exif(orientation, order))
        h, w = check_image(str(p))[1]
        assert read_size(p) == (w, h) == ((45, 120) if orientation >= 5 else (120, 45)), (orientation, order)
