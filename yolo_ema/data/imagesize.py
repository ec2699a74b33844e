"""Image size from the file header, plus the integrity checks Ultralytics would otherwise trip over.

JPEG: the size is in the first SOFn segment (ITU-T T.81, B.2.2); the file must end with EOI (FF D9).
PNG: the size is in IHDR (PNG spec 11.2.2); the file must end with the IEND chunk.
Other formats go through Pillow's lazy ``Image.open`` (header only). The pixels are decoded only when the tail check
fails, to tell a truncated file (rejected) from one with trailing junk (accepted, as Ultralytics restores it).
"""

from __future__ import annotations

import os
import struct

JPEG_EXT = {".jpg", ".jpeg"}
PNG_EXT = {".png"}
# What Ultralytics trains on (ultralytics.data.utils.IMG_FORMATS), with the Pillow format name each must contain.
IMG_EXT = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".dng": "TIFF",
    ".mpo": "MPO",
    ".pfm": "PFM",
}
MIN_SIDE = 10  # Ultralytics rejects images with a side under 10 px
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_NO_LENGTH = {0x01, 0xD8} | set(range(0xD0, 0xD8))
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_IEND = b"IEND\xaeB`\x82"


class BadImage(ValueError):
    """The file is not a usable image; the message says why (without the path)."""


def _jpeg_size(f, head: bytes) -> tuple[int, int]:
    buf, pos = head, 2
    while True:
        while len(buf) < pos + 9:  # marker (2) + length (2) + SOF precision (1) + height (2) + width (2)
            more = f.read(65536)
            if not more:
                raise BadImage("truncated JPEG header (no SOF marker)")
            buf += more
        if buf[pos] != 0xFF:
            raise BadImage(f"corrupt JPEG header (byte 0x{buf[pos]:02X} at offset {pos}, expected a marker)")
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _NO_LENGTH:
            pos += 2
            continue
        if marker in _SOF:
            h, w = struct.unpack(">HH", buf[pos + 5 : pos + 9])
            return w, h
        if marker in (0xD9, 0xDA):
            raise BadImage("JPEG without a frame header (SOF)")
        (length,) = struct.unpack(">H", buf[pos + 2 : pos + 4])
        if length < 2:
            raise BadImage(f"corrupt JPEG segment length {length} at offset {pos}")
        pos += 2 + length


def _tail_ok(f, size: int, kind: str) -> bool:
    n = min(size, 64)
    f.seek(size - n)
    tail = f.read(n).rstrip(b"\x00")
    if kind == "JPEG":
        return tail.endswith(b"\xff\xd9")
    return tail.endswith(_IEND)


def _decodes(path: str) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:
        return False


def _pillow_size(path: str, ext: str) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            fmt, size = (im.format or "?").upper(), im.size
    except Exception as e:
        raise BadImage(f"not a readable image ({type(e).__name__}: {e})") from None
    want = IMG_EXT.get(ext)
    if want and want not in fmt and not (want == "JPEG" and fmt == "MPO"):
        raise BadImage(f"content is {fmt} but the extension is {ext}")
    return size


def read_size(path: str | os.PathLike, check: bool = True) -> tuple[int, int]:
    """Return (width, height) of an image from its header; raise BadImage if it is unusable.

    With ``check`` the file must also be complete (JPEG EOI / PNG IEND, or decode fully), its content must match its
    extension, and both sides must be at least 10 px.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    with open(path, "rb") as f:
        head = f.read(4096)
        if not head:
            raise BadImage("empty file (0 bytes)")
        if head[:3] == b"\xff\xd8\xff":
            kind = "JPEG"
            w, h = _jpeg_size(f, head)
        elif head[:8] == _PNG_SIG:
            kind = "PNG"
            if len(head) < 24 or head[12:16] != b"IHDR":
                raise BadImage("truncated PNG header (no IHDR)")
            w, h = struct.unpack(">II", head[16:24])
        else:
            kind = None
        if kind is not None:
            if ext in IMG_EXT and IMG_EXT[ext] not in (kind, "MPO" if kind == "JPEG" else kind):
                raise BadImage(f"content is {kind} but the extension is {ext}")
            if check and not _tail_ok(f, os.fstat(f.fileno()).st_size, kind) and not _decodes(path):
                raise BadImage(f"truncated {kind} (no end marker and the pixels do not decode)")
    if kind is None:
        w, h = _pillow_size(path, ext)
    if check and (w < MIN_SIDE or h < MIN_SIDE):
        raise BadImage(f"image size {w}x{h} is under {MIN_SIDE} px")
    return w, h
