"""Problem photos: verify, strip, store and serve before/after pictures safely.

A phone photo carries the camera's GPS fix, time and model in EXIF. That is evidence for
the office, so it is kept in ``Photo.exif`` (private), while the copy the site serves is
re-encoded from the pixels alone: no EXIF, no trailing bytes, nothing a polyglot file
could smuggle through. Files are named by random hex under ``PHOTO_DIR/yyyy/mm/`` and
written to a temporary file first, so an interrupted upload leaves nothing behind.
The caller says where (``Settings.photo_dir``) and how large a photo may be
(``Settings.max_photo_bytes``).
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from app.models import Issue, Photo, User, now_local
from app.services.core import access
from app.services.core.errors import NotFoundError, ValidationError
from app.services.core.settings import Settings
from gis.exif import read_exif_gps

# Pillow warns above this many pixels and refuses at twice it; we refuse at once (a
# 40 MP phone photo is already generous, a 400 MP 1-bit PNG is a memory bomb).
MAX_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

PHOTO_KINDS = ("before", "after")
# Detected format → (extension, format the served copy is re-encoded to).
FORMATS = {
    "JPEG": ("jpg", "JPEG"),
    "MPO": ("jpg", "JPEG"),  # phones' multi-picture JPEG; the first frame is the photo
    "PNG": ("png", "PNG"),
    "WEBP": ("webp", "WEBP"),
}
# A real image of that format starts with these bytes; anything else is disguised.
MAGIC = {
    "JPEG": (b"\xff\xd8\xff",),
    "MPO": (b"\xff\xd8\xff",),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "WEBP": (b"RIFF",),
}
HEIF_BRANDS = (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypmif1", b"ftypmsf1")
# Markup or archive signatures inside an "image" mean a polyglot meant for a browser.
# Only the head (metadata segments) and the tail (bytes appended after the image) are
# scanned: that is where polyglots hide them, and random pixel data is not misread.
POLYGLOT_MARKERS = (
    b"<script",
    b"<html",
    b"<!doctype",
    b"<?php",
    b"<svg ",
    b"<iframe",
    b"<body",
    b"javascript:",
)
POLYGLOT_SCAN_BYTES = 65536
THUMB_SIZE = (320, 320)
_IMAGE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


@dataclass
class PhotoUpload:
    """An uploaded file read into memory (bounded), with the name the user gave it."""

    filename: str
    data: bytes


def read_upload(file_storage, *, max_bytes: int) -> PhotoUpload:
    """Read a werkzeug FileStorage up to the size limit; refuse a larger file by name.

    Parameters
    ----------
    file_storage
        The uploaded file (anything with ``filename`` and a readable ``stream``).
    max_bytes
        The largest photo accepted (``Settings.max_photo_bytes``).
    """
    limit = int(max_bytes)
    name = os.path.basename(file_storage.filename or "") or "照片"
    data = file_storage.stream.read(limit + 1)
    if len(data) > limit:
        msg = f"照片 {name} 超过大小上限 {limit // (1024 * 1024)} MB"
        raise ValidationError(msg)
    if not data:
        msg = f"照片 {name} 是空文件"
        raise ValidationError(msg)
    return PhotoUpload(filename=name, data=data)


def _refuse(name: str, why: str) -> None:
    msg = f"照片 {name} 不是有效的图片文件 ({why})"
    raise ValidationError(msg)


def _decode(upload: PhotoUpload) -> tuple[Image.Image, str, Image.Exif]:
    """Verify and fully decode the bytes; return the image, its format and its EXIF."""
    name, data = upload.filename, upload.data
    if any(data[4:12].startswith(brand) for brand in HEIF_BRANDS):
        msg = (
            f"照片 {name} 是 HEIC 格式，本系统暂不支持；请在手机相机设置中选择"
            "“兼容性最佳”(JPEG) 后重拍或转换后上传"
        )
        raise ValidationError(msg)
    edges = (data[:POLYGLOT_SCAN_BYTES] + b"\n" + data[-POLYGLOT_SCAN_BYTES:]).lower()
    if any(marker in edges for marker in POLYGLOT_MARKERS):
        _refuse(name, "文件中夹带网页或脚本内容")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format or ""
                width, height = probe.size
                if width * height > MAX_PIXELS:
                    msg = (
                        f"照片 {name} 像素过多 ({width}×{height})，"
                        f"上限 {MAX_PIXELS // 1_000_000} 百万像素"
                    )
                    raise ValidationError(msg)
                probe.verify()
            if fmt not in FORMATS:
                _refuse(name, f"不支持的格式 {fmt or '未知'}，请上传 JPEG、PNG 或 WebP")
            if not data.startswith(MAGIC[fmt]) or (fmt == "WEBP" and data[8:12] != b"WEBP"):
                _refuse(name, "文件头与图片格式不符")
            # verify() leaves the image unusable; re-open and decode every pixel.
            image = Image.open(io.BytesIO(data))
            exif = image.getexif()
            image.load()
    except Image.DecompressionBombError:
        msg = f"照片 {name} 像素过多，疑似解压炸弹，已拒绝"
        raise ValidationError(msg) from None
    except Image.DecompressionBombWarning:
        msg = f"照片 {name} 像素过多 (超过 {MAX_PIXELS // 1_000_000} 百万像素)，已拒绝"
        raise ValidationError(msg) from None
    except _IMAGE_ERRORS:
        _refuse(name, "无法解码")
    return image, fmt, exif


def _json_value(value):
    """EXIF values as JSON: rationals → float, bytes → text, tuples → lists."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip("\x00 ")[:200]
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value][:32]
    if isinstance(value, (int, str, bool)) or value is None:
        return value if not isinstance(value, str) else value.strip("\x00 ")[:200]
    try:
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return str(value)[:200]


def extract_exif(exif: Image.Exif, data: bytes) -> dict:
    """The original EXIF worth keeping as evidence: camera, time and GPS."""
    out: dict = {}
    for tag, value in exif.items():
        name = ExifTags.TAGS.get(tag)
        if name and name not in ("MakerNote", "UserComment", "ExifOffset", "GPSInfo"):
            out[name] = _json_value(value)
    try:
        for tag, value in exif.get_ifd(ExifTags.IFD.Exif).items():
            name = ExifTags.TAGS.get(tag)
            if name in (
                "DateTimeOriginal",
                "DateTimeDigitized",
                "OffsetTimeOriginal",
                "ExposureTime",
                "FNumber",
                "ISOSpeedRatings",
                "FocalLength",
            ):
                out[name] = _json_value(value)
        gps_raw = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except (KeyError, ValueError, TypeError):
        gps_raw = {}
    if gps_raw:
        out["GPSInfo"] = {
            ExifTags.GPSTAGS.get(k, str(k)): _json_value(v) for k, v in gps_raw.items()
        }
    gps = read_exif_gps(data)
    if gps is not None:
        out["gps"] = {"lon": gps[0], "lat": gps[1], "crs": "wgs84"}
    return out


def thumb_path(path: str) -> str:
    """The thumbnail's relative path beside its photo."""
    stem, _ = os.path.splitext(path)
    return f"{stem}_t.jpg"


def _write_atomic(target: Path, image: Image.Image, fmt: str, **options) -> None:
    """Encode into a temporary file in the same directory, then rename into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format=fmt, **options)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _clean_copy(image: Image.Image, fmt: str) -> Image.Image:
    """Pixels only, upright (EXIF orientation applied), in a mode the format can store."""
    upright = ImageOps.exif_transpose(image) or image
    if fmt == "JPEG" and upright.mode not in ("RGB", "L"):
        upright = upright.convert("RGB")
    elif fmt in ("PNG", "WEBP") and upright.mode not in ("RGB", "RGBA", "L", "LA"):
        upright = upright.convert("RGBA" if "transparency" in upright.info else "RGB")
    clean = upright.copy()
    clean.info = {}  # drops exif/xmp/icc/comments Pillow would otherwise write back
    return clean


def store_image(upload: PhotoUpload, *, photo_dir: Path) -> dict:
    """Decode, strip and store one image with its thumbnail; return the Photo fields.

    Parameters
    ----------
    upload
        The file as read.
    photo_dir
        Where photos are stored (``Settings.photo_dir``).
    """
    image, fmt, exif = _decode(upload)
    ext, out_fmt = FORMATS[fmt]
    now = now_local()
    rel = f"{now:%Y}/{now:%m}/{secrets.token_hex(16)}.{ext}"
    root = Path(photo_dir)
    clean = _clean_copy(image, out_fmt)
    options = {"quality": 88, "optimize": True} if out_fmt == "JPEG" else {}
    if out_fmt == "WEBP":
        options = {"quality": 88}
    written: list[Path] = []
    try:
        _write_atomic(root / rel, clean, out_fmt, **options)
        written.append(root / rel)
        thumb = clean.convert("RGB") if clean.mode != "RGB" else clean.copy()
        thumb.thumbnail(THUMB_SIZE)
        _write_atomic(root / thumb_path(rel), thumb, "JPEG", quality=80)
        written.append(root / thumb_path(rel))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return {
        "path": rel,
        "sha256": hashlib.sha256(upload.data).hexdigest(),
        "width": clean.width,
        "height": clean.height,
        "exif": extract_exif(exif, upload.data),
    }


def remove_files(photos: list[Photo], *, photo_dir: Path) -> None:
    """Delete stored files (under ``photo_dir``) of photos whose transaction did not commit."""
    root = Path(photo_dir)
    for photo in photos:
        for rel in (photo.path, thumb_path(photo.path)):
            (root / rel).unlink(missing_ok=True)


def save_photo(session, user: User, issue: Issue, file_storage, *, kind: str,
               settings: Settings, event=None) -> Photo:
    """Verify, strip and store one uploaded photo of an issue the user may see.

    Raises ValidationError naming the file when it is too large, not a real image, a
    disguised/polyglot file or a pixel flood; nothing is left on disk in that case.

    Parameters
    ----------
    session
        The database session (flushed, not committed).
    user
        Who uploads; the issue must be visible to them.
    issue
        The problem the photo belongs to.
    file_storage
        The upload (a werkzeug FileStorage, or a ``PhotoUpload`` already read).
    kind
        "before" or "after".
    settings
        Where photos are stored and how large one may be.
    event
        The IssueEvent the photo belongs to, if any.
    """
    if kind not in PHOTO_KINDS:
        msg = f"照片类型 {kind!r} 无效 (可选: before、after)"
        raise ValidationError(msg)
    issue = access.get_issue(session, user, issue.id)
    upload = (file_storage if isinstance(file_storage, PhotoUpload)
              else read_upload(file_storage, max_bytes=settings.max_photo_bytes))
    fields = store_image(upload, photo_dir=settings.photo_dir)
    photo = Photo(
        issue=issue, kind=kind, event_id=event.id if event is not None else None, **fields
    )
    session.add(photo)
    try:
        session.flush()
    except BaseException:
        remove_files([photo], photo_dir=settings.photo_dir)
        raise
    return photo


def photo_file(session, user: User, issue_id: int, photo_id: int, *, photo_dir: Path,
               thumb: bool = False) -> Path:
    """The served (stripped) file of a photo under ``photo_dir``, after the issue's access check."""
    issue = access.get_issue(session, user, issue_id)
    photo = session.get(Photo, photo_id)
    if photo is None or photo.issue_id != issue.id:
        msg = f"照片 {photo_id} 不存在"
        raise NotFoundError(msg)
    path = Path(photo_dir) / (thumb_path(photo.path) if thumb else photo.path)
    if not path.is_file():
        msg = f"照片 {photo_id} 的文件已丢失"
        raise NotFoundError(msg)
    return path
