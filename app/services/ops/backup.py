"""Backups: a consistent snapshot of the database plus the photo files, and its restore.

A backup is one directory (or the same directory packed as ``.tar.gz``)::

    sanigrid-backup-YYYYmmdd-HHMMSS/
        manifest.json      counts per table, sha256 of every file, schema revision
        database.sqlite3   SQLite: a page-for-page copy made with the online backup API
        database.dump      PostgreSQL: ``pg_dump -Fc``
        photos/yyyy/mm/... the stored photo files and thumbnails the snapshot refers to

Consistency: on PostgreSQL the counts and the photo list are read inside one
REPEATABLE READ transaction whose snapshot ``pg_dump --snapshot`` shares, so the manifest
describes exactly the rows in the dump while the site keeps serving. On SQLite the copy
is taken first and everything is counted from the copy. Photos are written to disk before
their row commits, so every photo a snapshot names is already complete on disk.

Restore goes into an EMPTY database (schema only, or nothing at all) unless forced, then
verifies the restored counts and every photo's sha256 against the manifest.

The caller passes the session, the photo and backup directories (``Settings``) and, for
PostgreSQL, the environment pg_dump/pg_restore run in (the command's own).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, Engine

from app.models import Issue, now_local
from app.services.core.errors import ValidationError
from app.services.issues.photos import thumb_path

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.dump"
PHOTOS = "photos"
SKIP_TABLES = {"alembic_version"}


class BackupError(ValidationError):
    """A backup or restore could not be made; the message says why and what to do."""


@dataclass
class BackupResult:
    path: Path
    manifest: dict


@dataclass
class RestoreResult:
    counts: dict[str, int]
    photos: int
    problems: list[str] = field(default_factory=list)


# ---- helpers ---------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tables() -> list[str]:
    """The application's tables in dependency order (parents first)."""
    # Every model shares one metadata (the models' declarative base).
    return [t.name for t in Issue.metadata.sorted_tables if t.name not in SKIP_TABLES]


def _count_rows(conn: Connection) -> dict[str, int]:
    present = set(inspect(conn).get_table_names())
    return {
        name: int(conn.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar() or 0)
        for name in _tables()
        if name in present
    }


def _photo_paths(conn: Connection) -> list[str]:
    if "photo" not in set(inspect(conn).get_table_names()):
        return []
    return [row[0] for row in conn.execute(text("SELECT path FROM photo ORDER BY id"))]


def _revision(conn: Connection) -> str | None:
    if "alembic_version" not in set(inspect(conn).get_table_names()):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _safe_rel(rel: str) -> str:
    """A stored photo path must stay inside the photo directory (no ``..``, no root)."""
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or ".." in parts:
        msg = f"照片路径不安全，已拒绝: {rel!r}"
        raise BackupError(msg)
    return rel


def _pg_env(engine: Engine, base: Mapping[str, str] | None) -> dict[str, str]:
    """libpq environment for pg_dump/pg_restore (the password never shows in ``ps``).

    ``base`` is the environment the tools run in (the caller's); the connection's PG*
    variables, from the engine URL, are set over it.
    """
    url = engine.url
    env = dict(base or {})
    for key, value in (
        ("PGHOST", url.host),
        ("PGPORT", str(url.port) if url.port else None),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value:
            env[key] = str(value)
    return env


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = (
            f"未找到 {name}：PostgreSQL 的备份与恢复需要它，"
            "请安装与服务器同版本的客户端 (Debian: apt install postgresql-client)"
        )
        raise BackupError(msg)
    return path


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        msg = f"{what}失败 (退出码 {proc.returncode}): {detail[-1] if detail else '无输出'}"
        raise BackupError(msg)


def _sqlite_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        msg = "内存中的 SQLite 数据库无法备份或恢复"
        raise BackupError(msg)
    return Path(database)


# ---- backup ----------------------------------------------------------------------------


def _snapshot_sqlite(engine: Engine, work: Path) -> tuple[dict, list[str], str | None]:
    source = _sqlite_path(engine)
    if not source.is_file():
        msg = f"数据库文件不存在: {source}"
        raise BackupError(msg)
    target = work / SQLITE_FILE
    src = sqlite3.connect(str(source))
    dst = sqlite3.connect(str(target))
    try:
        # The online backup API copies a consistent image while writers keep working.
        with dst:
            src.backup(dst)
    finally:
        dst.close()
        src.close()
    copy = create_engine(f"sqlite:///{target}")
    try:
        with copy.connect() as conn:
            return _count_rows(conn), _photo_paths(conn), _revision(conn)
    finally:
        copy.dispose()


def _snapshot_postgres(engine: Engine, work: Path,
                       env: Mapping[str, str] | None) -> tuple[dict, list[str], str | None]:
    pg_dump = _pg_tool("pg_dump")
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        conn.begin()
        # pg_dump imports this snapshot: the dump and our counts see the same rows.
        snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar()
        counts = _count_rows(conn)
        paths = _photo_paths(conn)
        revision = _revision(conn)
        _run(
            [
                pg_dump,
                "-Fc",
                "--no-owner",
                "--no-privileges",
                f"--snapshot={snapshot}",
                "-f",
                str(work / PG_FILE),
            ],
            _pg_env(engine, env),
            "pg_dump 导出数据库",
        )
        conn.rollback()
    return counts, paths, revision


def create_backup(
    session,
    *,
    out_dir: Path,
    photo_dir: Path,
    archive: bool = True,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> BackupResult:
    """Write a consistent snapshot of the database and its photos under ``out_dir``.

    Returns the backup's path (``.tar.gz`` when ``archive``, else a directory) and its
    manifest. Nothing is left behind when any step fails.

    Parameters
    ----------
    session
        The database session (committed first, to release its locks).
    out_dir
        Where backups go (``Settings.backup_dir`` by default).
    photo_dir
        Where the photos are stored (``Settings.photo_dir``).
    archive
        Pack the backup as ``.tar.gz`` (else leave a directory).
    env
        PostgreSQL only: the environment pg_dump runs in (the command passes its own).
    log
        Called with each progress line.
    """
    engine = session.get_bind()
    dialect = engine.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        msg = f"不支持备份 {dialect} 数据库"
        raise BackupError(msg)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"无法创建备份目录 {out_dir}: {exc.strerror or exc}"
        raise BackupError(msg) from None
    stamp = now_local().strftime("%Y%m%d-%H%M%S")
    name = f"sanigrid-backup-{stamp}"
    n = 1
    while (out_dir / name).exists() or (out_dir / f"{name}.tar.gz").exists():
        n += 1
        name = f"sanigrid-backup-{stamp}-{n}"
    staging = Path(tempfile.mkdtemp(prefix=".backup-", dir=out_dir))
    try:
        session.commit()  # release our own locks before copying
        if dialect == "sqlite":
            counts, paths, revision = _snapshot_sqlite(engine, staging)
            db_file = SQLITE_FILE
        else:
            counts, paths, revision = _snapshot_postgres(engine, staging, env)
            db_file = PG_FILE
        log(
            f"数据库快照完成: {counts.get('issue', 0)} 条问题, "
            f"{counts.get('issue_event', 0)} 条处置记录"
        )
        files: dict[str, str] = {}
        missing: list[str] = []
        for rel in paths:
            for item in (_safe_rel(rel), thumb_path(rel)):
                source = Path(photo_dir) / item
                if not source.is_file():
                    if item == rel:
                        missing.append(rel)
                    continue
                target = staging / PHOTOS / item
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
                files[item] = _sha256(target)
        log(f"照片已复制: {len(paths) - len(missing)} 张 (缺失 {len(missing)} 张)")
        manifest = {
            "format": FORMAT_VERSION,
            "app": "sanigrid",
            "created_at": now_local().isoformat(timespec="seconds"),
            "dialect": dialect,
            "revision": revision,
            "database": {"file": db_file, "sha256": _sha256(staging / db_file)},
            "counts": counts,
            "issues": counts.get("issue", 0),
            "events": counts.get("issue_event", 0),
            "photos": counts.get("photo", 0),
            "photo_files": files,
            "missing_photos": missing,
        }
        (staging / MANIFEST).write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        if archive:
            final = out_dir / f"{name}.tar.gz"
            partial = out_dir / f".{name}.tar.gz.part"
            with tarfile.open(partial, "w:gz") as tar:
                tar.add(staging, arcname=name)
            os.replace(partial, final)
            shutil.rmtree(staging)
        else:
            final = out_dir / name
            os.replace(staging, final)
    except OSError as exc:
        _cleanup(staging, out_dir, name)
        msg = f"写入备份失败 ({out_dir}): {exc.strerror or exc}"
        raise BackupError(msg) from None
    except BaseException:
        _cleanup(staging, out_dir, name)
        raise
    return BackupResult(path=final, manifest=manifest)


def _cleanup(staging: Path, out_dir: Path, name: str) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    (out_dir / f".{name}.tar.gz.part").unlink(missing_ok=True)


# ---- restore ---------------------------------------------------------------------------


def _open_backup(path: Path, scratch: Path) -> Path:
    """The backup's directory (a packed backup is unpacked into ``scratch``)."""
    path = Path(path)
    if path.is_dir():
        root = path
    elif path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            with tarfile.open(path) as tar:
                # The "data" filter refuses absolute paths, links out and device files.
                tar.extractall(scratch, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            msg = f"备份文件 {path.name} 无法解包 (可能不完整或已损坏): {exc}"
            raise BackupError(msg) from None
        inner = [p for p in scratch.iterdir() if p.is_dir()]
        root = inner[0] if len(inner) == 1 else scratch
    else:
        msg = f"找不到备份: {path} (应为备份目录或 .tar.gz 文件)"
        raise BackupError(msg)
    if not (root / MANIFEST).is_file():
        msg = f"{path} 不是 SaniGrid 备份 (缺少 {MANIFEST})"
        raise BackupError(msg)
    return root


def read_manifest(root: Path) -> dict:
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{MANIFEST} 无法读取: {exc}"
        raise BackupError(msg) from None
    if manifest.get("app") != "sanigrid" or manifest.get("format") != FORMAT_VERSION:
        msg = f"{MANIFEST} 的格式版本 {manifest.get('format')!r} 不受支持"
        raise BackupError(msg)
    return manifest


def verify_files(root: Path, manifest: dict) -> None:
    """Refuse a backup whose database file or any photo differs from its manifest."""
    db_file = manifest["database"]["file"]
    if not (root / db_file).is_file() or _sha256(root / db_file) != manifest["database"]["sha256"]:
        msg = f"备份中的数据库文件 {db_file} 缺失或校验和不符，备份已损坏，未做任何恢复"
        raise BackupError(msg)
    for rel, digest in manifest.get("photo_files", {}).items():
        source = root / PHOTOS / _safe_rel(rel)
        if not source.is_file() or _sha256(source) != digest:
            msg = f"备份中的照片 {rel} 缺失或校验和不符，备份已损坏，未做任何恢复"
            raise BackupError(msg)


# Tables init-db fills in a new database (categories, synonyms, calendar, default settings).
STANDARD_TABLES = {"category", "category_alias", "workday_override", "calendar_year", "setting"}


def database_rows(engine: Engine) -> dict[str, int]:
    """Rows per application table that exists (empty dict: no schema at all)."""
    with engine.connect() as conn:
        return {name: n for name, n in _count_rows(conn).items() if n}


def _restore_sqlite(engine: Engine, source: Path) -> None:
    target = _sqlite_path(engine)
    target.parent.mkdir(parents=True, exist_ok=True)
    engine.dispose()
    src = sqlite3.connect(str(source))
    dst = sqlite3.connect(str(target))
    try:
        # Page-for-page copy into the target: replaces its schema and rows in one step.
        with dst:
            src.backup(dst)
    finally:
        dst.close()
        src.close()


def _restore_postgres(engine: Engine, source: Path, env: Mapping[str, str] | None) -> None:
    pg_restore = _pg_tool("pg_restore")
    engine.dispose()
    # --clean drops what an init-db (or --force) left; --single-transaction makes a
    # failed restore leave the database exactly as it was.
    _run(
        [
            pg_restore,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "-d",
            engine.url.database,
            str(source),
        ],
        _pg_env(engine, env),
        "pg_restore 恢复数据库",
    )


def restore_backup(
    session,
    path: Path,
    *,
    photo_dir: Path,
    force: bool = False,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> RestoreResult:
    """Restore a backup into an empty database and the photo directory, then verify it.

    Refuses a database that holds rows unless ``force``; refuses a backup whose files
    do not match their manifest (nothing is touched then). ``env`` is, for PostgreSQL,
    the environment pg_restore runs in (the command passes its own).
    """
    engine = session.get_bind()
    session.rollback()
    session.close()
    with tempfile.TemporaryDirectory(prefix="sanigrid-restore-") as scratch:
        root = _open_backup(Path(path), Path(scratch))
        manifest = read_manifest(root)
        dialect = engine.dialect.name
        if manifest["dialect"] != dialect:
            msg = (
                f"备份来自 {manifest['dialect']} 数据库，不能恢复到 {dialect} 数据库；"
                "请把 DATABASE_URL 指向同类数据库"
            )
            raise BackupError(msg)
        verify_files(root, manifest)
        rows = database_rows(engine)
        if set(rows) <= STANDARD_TABLES:
            # What init-db loads into a new database: no office work to lose.
            rows = {}
        if rows and not force:
            detail = "、".join(f"{name} {n} 行" for name, n in list(rows.items())[:4])
            msg = f"目标数据库不是空的 ({detail})；请指向一个空数据库，或加 --force 覆盖"
            raise BackupError(msg)
        log(f"恢复数据库 ({manifest['issues']} 条问题, {manifest['events']} 条处置记录)")
        db_file = root / manifest["database"]["file"]
        if dialect == "sqlite":
            _restore_sqlite(engine, db_file)
        else:
            _restore_postgres(engine, db_file, env)
        photo_dir = Path(photo_dir)
        try:
            for rel in manifest.get("photo_files", {}):
                target = photo_dir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".restore-{target.name}.part")
                shutil.copy2(root / PHOTOS / rel, partial)
                os.replace(partial, target)
        except OSError as exc:
            msg = f"照片写入 {photo_dir} 失败: {exc.strerror or exc}"
            raise BackupError(msg) from None
    result = verify_restore(engine, manifest, photo_dir=photo_dir)
    log(f"已恢复 {result.photos} 张照片")
    return result


def verify_restore(engine: Engine, manifest: dict, *, photo_dir: Path) -> RestoreResult:
    """Compare the restored database and photo files with the manifest."""
    with engine.connect() as conn:
        counts = _count_rows(conn)
        paths = _photo_paths(conn)
    problems = [
        f"{name}: 备份 {n} 行, 恢复后 {counts.get(name, 0)} 行"
        for name, n in manifest["counts"].items()
        if counts.get(name, 0) != n
    ]
    found = 0
    files = manifest.get("photo_files", {})
    for rel in paths:
        target = Path(photo_dir) / rel
        if rel in files and target.is_file() and _sha256(target) == files[rel]:
            found += 1
        elif rel not in manifest.get("missing_photos", []):
            problems.append(f"照片 {rel} 未能恢复")
    if problems:
        msg = "恢复后的校验未通过: " + "; ".join(problems[:5])
        raise BackupError(msg)
    return RestoreResult(counts=counts, photos=found, problems=problems)


__all__ = [
    "BackupError",
    "BackupResult",
    "RestoreResult",
    "create_backup",
    "database_rows",
    "restore_backup",
    "verify_restore",
]
