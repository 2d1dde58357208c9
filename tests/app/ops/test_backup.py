"""Backup and restore: a snapshot restored into an empty database holds every problem,
event and photo (SQLite, and PostgreSQL when DATABASE_URL points there)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import select

from app.config import current_settings
from app.models import Issue, IssueEvent, Photo, User
from app.services.issues.actions import act, report_issue
from app.services.issues.intake import IssueInput, transition
from app.services.issues.photos import PhotoUpload, thumb_path
from app.services.ops.backup import BackupError, create_backup, restore_backup
from tests.factories import app_config, jpeg_bytes, make_database, migrate, west_point


def _world(session, factory) -> dict:
    """Problems with photos in several states, from the services the pages use."""
    town = factory.town()
    users = town["users"]
    ids = []
    for i in range(3):
        lon, lat = west_point(i)
        result = report_issue(
            session,
            users["inspector"],
            IssueInput(description=f"背街小巷积存垃圾 {i}", category="0302", lon=lon, lat=lat),
            [PhotoUpload(f"现场{i}.jpg", jpeg_bytes(colour="red"))],
            settings=current_settings(),
        )
        session.commit()
        ids.append(result.issue.id)
    transition(session, users["admin"], ids[0], "dispatch")
    session.commit()
    issue = session.get(Issue, ids[0])
    act(
        session,
        users["west"],
        ids[0],
        "submit",
        expected_version=issue.version, settings=current_settings(),
        note="已清理",
        files=[PhotoUpload("整改后.jpg", jpeg_bytes(colour="blue"))],
    )
    session.commit()
    # A problem with no place at all: kept for manual placement, must survive too.
    factory.issue(users["inspector"], lon=None, lat=None, description="无地址的问题")
    return town


def _snapshot(session) -> dict:
    issues = {
        i.id: (
            i.status,
            i.description,
            i.lon,
            i.lat,
            i.unit_id,
            i.cell_id,
            i.version,
            i.needs_placement,
            str(i.deadline),
        )
        for i in session.execute(select(Issue)).scalars()
    }
    events = {
        e.id: (e.issue_id, e.action, e.from_status, e.to_status, e.note, e.user_id)
        for e in session.execute(select(IssueEvent)).scalars()
    }
    photos = {
        p.id: (p.issue_id, p.kind, p.path, p.sha256, p.event_id)
        for p in session.execute(select(Photo)).scalars()
    }
    return {"issues": issues, "events": events, "photos": photos}


@pytest.fixture()
def fresh(tmp_path):
    """A second, EMPTY database (no schema at all) and photo directory for restoring."""
    url, drop = make_database("restore", tmp_path)
    from app import create_app

    config = app_config(url, tmp_path)
    config["PHOTO_DIR"] = str(tmp_path / "restored-photos")
    target = create_app(config)
    yield target
    with target.app_context():
        drop()


def _restore_into(target, backup_path: Path, **kw):
    from app.extensions import db

    with target.app_context():
        result = restore_backup(
            db.session, backup_path, photo_dir=Path(target.config["PHOTO_DIR"]), **kw
        )
        snap = _snapshot(db.session)
        db.session.remove()
    return result, snap


@pytest.mark.parametrize("archive", [True, False], ids=["tar.gz", "directory"])
def test_backup_restores_every_problem_event_and_photo(
    app, session, factory, tmp_path, fresh, archive
):
    _world(session, factory)
    before = _snapshot(session)
    assert len(before["issues"]) == 4 and len(before["photos"]) == 4
    assert len(before["events"]) >= 6

    result = create_backup(
        session,
        out_dir=tmp_path / "backups",
        photo_dir=Path(app.config["PHOTO_DIR"]),
        archive=archive,
    )
    assert result.path.name.startswith("sanigrid-backup-")
    assert result.path.name.endswith(".tar.gz") == archive
    m = result.manifest
    assert (m["issues"], m["events"], m["photos"]) == (4, len(before["events"]), 4)
    # every photo and its thumbnail, each with a checksum
    assert len(m["photo_files"]) == 8
    assert not m["missing_photos"]
    # no staging directory or partial archive is left beside the backup
    assert [p.name for p in (tmp_path / "backups").iterdir()] == [result.path.name]

    restored, after = _restore_into(fresh, result.path)
    assert after == before
    assert restored.photos == 4
    assert restored.counts["issue"] == 4
    photo_root = Path(fresh.config["PHOTO_DIR"])
    source_root = Path(app.config["PHOTO_DIR"])
    for _issue_id, _kind, rel, _sha, _event in before["photos"].values():
        for item in (rel, thumb_path(rel)):
            assert (photo_root / item).read_bytes() == (source_root / item).read_bytes()

    # The restored site works: the workflow goes on where it stopped.
    from app.extensions import db

    with fresh.app_context():
        inspector = db.session.execute(select(User).where(User.username == "inspector")).scalar()
        submitted = db.session.execute(select(Issue).where(Issue.status == "submitted")).scalar()
        transition(db.session, inspector, submitted.id, "verify_ok")
        db.session.commit()
        # sequences came back too: a new problem gets a fresh id
        new = IssueInput(
            description="恢复后新上报", category="0302", lon=west_point(0)[0], lat=west_point(0)[1]
        )
        from app.services.issues.intake import create_issue

        issue = create_issue(db.session, inspector, new)
        db.session.commit()
        assert issue.id > max(before["issues"])
        db.session.remove()


def test_restore_into_migrated_empty_database(app, session, factory, tmp_path, fresh):
    """`init-db` then `restore`: a schema without rows counts as empty."""
    _world(session, factory)
    before = _snapshot(session)
    result = create_backup(session, out_dir=tmp_path / "b", photo_dir=Path(app.config["PHOTO_DIR"]))
    migrate(fresh)
    _restored, after = _restore_into(fresh, result.path)
    assert after == before


def test_restore_after_init_db_with_standard_tables(app, session, factory, tmp_path, fresh):
    """The deployment guide's order: `init-db` (schema and standard tables), then `restore`."""
    from app.extensions import db
    from app.services.tables.standard import load_standard_tables

    _world(session, factory)
    before = _snapshot(session)
    result = create_backup(session, out_dir=tmp_path / "b", photo_dir=Path(app.config["PHOTO_DIR"]))
    migrate(fresh)
    with fresh.app_context():
        added = load_standard_tables(db.session, Path(fresh.config["LAYERS_DIR"]))
        db.session.commit()
        db.session.remove()
    assert added["categories"] > 0
    _restored, after = _restore_into(fresh, result.path)
    assert after == before


def test_restore_refuses_a_database_that_holds_rows(app, session, factory, tmp_path, fresh):
    _world(session, factory)
    result = create_backup(session, out_dir=tmp_path / "b", photo_dir=Path(app.config["PHOTO_DIR"]))
    # restoring over the live database itself must be refused, and nothing changes
    before = _snapshot(session)
    with pytest.raises(BackupError, match="不是空的"):
        restore_backup(session, result.path, photo_dir=tmp_path / "p")
    assert _snapshot(session) == before

    # --force overwrites (a problem added since the backup is gone afterwards)
    town_users = {u.username: u for u in session.execute(select(User)).scalars()}
    factory.issue(town_users["inspector"], lon=None, lat=None, description="备份之后上报")
    assert len(_snapshot(session)["issues"]) == 5
    restored = restore_backup(
        session, result.path, photo_dir=Path(app.config["PHOTO_DIR"]), force=True
    )
    assert restored.counts["issue"] == 4


def test_corrupted_backup_is_refused_and_touches_nothing(app, session, factory, tmp_path, fresh):
    _world(session, factory)
    result = create_backup(
        session, out_dir=tmp_path / "b", photo_dir=Path(app.config["PHOTO_DIR"]), archive=False
    )
    manifest = json.loads((result.path / "manifest.json").read_text())
    rel = next(iter(manifest["photo_files"]))
    (result.path / "photos" / rel).write_bytes(b"not the photo")
    with pytest.raises(BackupError, match="校验和不符"):
        _restore_into(fresh, result.path)
    from app.extensions import db
    from app.services.ops.backup import database_rows

    with fresh.app_context():
        assert database_rows(db.engine) == {}
        db.session.remove()
    assert not Path(fresh.config["PHOTO_DIR"], rel).exists()


def test_truncated_archive_and_wrong_paths_are_refused(app, session, factory, tmp_path):
    _world(session, factory)
    result = create_backup(session, out_dir=tmp_path / "b", photo_dir=Path(app.config["PHOTO_DIR"]))
    data = result.path.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BackupError, match="无法解包"):
        restore_backup(session, cut, photo_dir=tmp_path / "p", force=True)
    with pytest.raises(BackupError, match="找不到备份"):
        restore_backup(session, tmp_path / "nope.tar.gz", photo_dir=tmp_path / "p")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(BackupError, match="不是 SaniGrid 备份"):
        restore_backup(session, plain, photo_dir=tmp_path / "p")
    # an archive smuggling a path out of the restore directory
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        payload = tmp_path / "x.txt"
        payload.write_text("x")
        tar.add(payload, arcname="../../escape.txt")
    with pytest.raises(BackupError):
        restore_backup(session, evil, photo_dir=tmp_path / "p")
    assert not (tmp_path.parent / "escape.txt").exists()


def test_backup_and_restore_commands(app, session, factory, tmp_path, fresh):
    _world(session, factory)
    before = _snapshot(session)
    runner = app.test_cli_runner()
    out = runner.invoke(args=["backup", "--out", str(tmp_path / "cli")])
    assert out.exit_code == 0, out.output
    path = out.output.strip().splitlines()[-1]
    assert path.endswith(".tar.gz") and Path(path).is_file()
    assert "4 条问题" in out.output

    # into the live database: refused with a one-line reason, non-zero exit
    again = runner.invoke(args=["restore", path, "--yes"])
    assert again.exit_code != 0
    assert "不是空的" in again.output

    # without --yes the command asks; answering no changes nothing
    target_runner = fresh.test_cli_runner()
    # with_appcontext reuses a pushed context, so push the restore target's own
    with fresh.app_context():
        asked = target_runner.invoke(args=["restore", path], input="n\n")
        assert asked.exit_code != 0 and "已取消" in asked.output
        done = target_runner.invoke(args=["restore", path, "--yes"])
        assert done.exit_code == 0, done.output
    assert "恢复完成并已校验: 4 条问题" in done.output
    from app.extensions import db

    with fresh.app_context():
        assert _snapshot(db.session) == before
        db.session.remove()

    missing = runner.invoke(args=["restore", str(tmp_path / "missing"), "--yes"])
    assert missing.exit_code != 0 and "找不到备份" in missing.output


def test_backup_into_unwritable_place_fails_cleanly(app, session, factory, tmp_path):
    factory.town()
    blocker = tmp_path / "file"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(BackupError, match="无法创建备份目录"):
        create_backup(session, out_dir=blocker / "sub", photo_dir=Path(app.config["PHOTO_DIR"]))


def test_missing_pg_dump_is_reported(app, session, monkeypatch, tmp_path):
    from app.services.ops import backup

    monkeypatch.setattr(backup.shutil, "which", lambda name: None)
    with pytest.raises(BackupError, match="未找到 pg_dump"):
        backup._pg_tool("pg_dump")
