"""The upload store: a file kept between its preview and its use, for its uploader only.

A problem list waits here between its preview and its import, a roster between its
preview and the accounts it creates. Each upload is kept under a random token (never the
user's file name) as three files in the caller's directory: ``<token>.bin`` (the bytes),
``<token>.json`` (owner, readable file name, time, and the result once used) and
``<token>.xlsx`` (a file made from it for download: the rejected rows, the temporary
passwords). Files are private to the server's user (mode 0600) and purged after a time.
The caller checks the permission and that the file reads before storing it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from app.models import User
from app.services.core.errors import NotFoundError
from app.services.core.text import clean_text

_TOKEN = re.compile(r"^[0-9a-f]{32}$")
_SUFFIXES = (".bin", ".json", ".xlsx")
# A script or style element goes with its content; any other tag leaves its text.
_TAG = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>|<[^>]*>", re.I | re.S)
# Characters Windows refuses in a file name: never part of a list's name, often of an attack.
_NAME_JUNK = re.compile(r'[<>:"|?*\ufffd]')
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


@dataclass(frozen=True)
class UploadPaths:
    """The three files of one upload."""

    data: Path  # the uploaded bytes
    meta: Path  # owner, file name, time, result
    output: Path  # a workbook made from the upload, for download


def upload_paths(directory: Path, token: str, *, what: str = "上传文件") -> UploadPaths:
    """The files of the upload ``token`` names; 404 for anything but a well-formed token.

    Parameters
    ----------
    directory
        The store's directory.
    token
        As returned by ``store_upload``; anything else (a path, ``..``) is refused.
    what
        The upload as the message names it ("导入任务", "花名册上传记录").
    """
    if not _TOKEN.match(token or ""):
        msg = f"{what}不存在或已过期"
        raise NotFoundError(msg)
    base = Path(directory)
    return UploadPaths(
        data=base / f"{token}.bin", meta=base / f"{token}.json", output=base / f"{token}.xlsx"
    )


def store_upload(directory: Path, owner: User, data: bytes, filename: str, *, ttl_s: float) -> str:
    """Keep an upload for its owner and return the token naming it.

    Parameters
    ----------
    directory
        The store's directory (created when missing).
    owner
        The user who uploaded it: only they can load it again.
    data, filename
        The file as uploaded; the name is kept in its readable form (``file_base_name``).
    ttl_s
        Uploads older than this are purged first.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    purge_uploads(directory, older_than_s=ttl_s)
    token = secrets.token_hex(16)
    paths = upload_paths(directory, token)
    paths.data.write_bytes(data)
    info = {"user_id": owner.id, "filename": file_base_name(filename), "at": time.time()}
    paths.meta.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    for path in (paths.data, paths.meta):
        os.chmod(path, 0o600)
    return token


def load_upload(directory: Path, owner: User, token: str, *, what: str = "上传文件") -> dict:
    """The upload's metadata, with ``data`` (its bytes, or None once used up).

    Another user's upload is answered as missing (404), as is an expired one.
    """
    paths = upload_paths(directory, token, what=what)
    if not paths.meta.is_file():
        msg = f"{what}不存在或已过期，请重新上传"
        raise NotFoundError(msg)
    info = json.loads(paths.meta.read_text(encoding="utf-8"))
    if info.get("user_id") != owner.id:
        msg = f"{what}不存在或已过期"
        raise NotFoundError(msg)
    info["data"] = paths.data.read_bytes() if paths.data.is_file() else None
    return info


def finish_upload(
    directory: Path,
    token: str,
    *,
    result: Mapping | None = None,
    output: bytes | None = None,
    keep_file: bool = False,
) -> None:
    """Record what the upload gave; keep a download made from it; drop its bytes.

    Parameters
    ----------
    result
        Stored in the metadata as ``result`` (JSON-serialisable).
    output
        A workbook to download later (``read_output``).
    keep_file
        Keep the uploaded bytes (it may be used again, e.g. after an aborted import).
    """
    paths = upload_paths(directory, token)
    if result is not None:
        info = json.loads(paths.meta.read_text(encoding="utf-8"))
        info["result"] = dict(result)
        paths.meta.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    if output:
        paths.output.write_bytes(output)
        os.chmod(paths.output, 0o600)
    if not keep_file:
        paths.data.unlink(missing_ok=True)


def read_output(
    directory: Path, owner: User, token: str, *, what: str = "上传文件", take: bool = False
) -> bytes | None:
    """The workbook ``finish_upload`` kept for the owner, or None; ``take`` deletes it."""
    load_upload(directory, owner, token, what=what)
    output = upload_paths(directory, token).output
    if not output.is_file():
        return None
    data = output.read_bytes()
    if take:
        # The small record stays (until purged) so a second try can say why it fails.
        output.unlink(missing_ok=True)
    return data


def purge_uploads(directory: Path, *, older_than_s: float) -> int:
    """Delete uploads left for longer than ``older_than_s``; return how many files went."""
    base = Path(directory)
    if not base.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for path in base.iterdir():
        if path.suffix in _SUFFIXES and path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def file_base_name(filename: object) -> str:
    """A file's own name as a person would read it: no folders, escapes or control chars.

    ``..\\..\\<script>…</script>"名单\\x07%0d%0a.xlsx`` gives ``名单.xlsx``: percent-escapes
    are decoded (then their control characters dropped), tags and characters no file name
    may hold are removed, and only the part after the last ``/`` or ``\\`` is kept.

    Parameters
    ----------
    filename
        The name as uploaded or given on the command line.

    Returns
    -------
    str
        The readable name with its extension; "清单" (plus the extension) when nothing
        readable is left.
    """
    raw = _readable_name(filename)
    ext = _EXTENSION.search(raw)
    suffix = ext.group(0).lower() if ext else ""
    return (readable_stem(filename) or "清单") + suffix


def readable_stem(filename: object) -> str:
    """The readable name (see ``file_base_name``) without its extension; may be empty."""
    return _EXTENSION.sub("", _readable_name(filename)).strip(" .")


def _readable_name(filename: object) -> str:
    text = unquote(str(filename or ""), errors="replace")
    text = _TAG.sub("", text)
    text = re.split(r"[\\/]", text)[-1]
    # A decoded %0d%0a (or a pasted tab) is no part of a name: drop it, not fold it.
    text = _NAME_JUNK.sub("", re.sub(r"[\t\r\n]", "", text))
    return clean_text(text, multiline=False)
