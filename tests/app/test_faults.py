"""Faults: the database going away, uploads cut short, a full disk. Each fails with a
clear Chinese message and leaves no half-written problem, row or file behind."""

from __future__ import annotations

import errno
import io
import os

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.models import Issue, IssueEvent, Photo
from app.services.issues import photos as photo_service
from tests.factories import app_config, jpeg_bytes, photo_files, west_point


@pytest.fixture(autouse=True)
def _own_photo_dir(app, tmp_path):
    """Each test stores photos in its own directory, so "nothing left behind" is checkable."""
    app.config["PHOTO_DIR"] = str(tmp_path / "photos")


@pytest.fixture()
def town(factory):
    return factory.town()


def _count(session, model) -> int:
    session.rollback()
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def _form(description: str, *, photos=()):
    lon, lat = west_point(0)
    data = {"category": "0302", "description": description, "lon": f"{lon}", "lat": f"{lat}"}
    if photos:
        data["photos"] = [(io.BytesIO(p), f"p{i}.jpg") for i, p in enumerate(photos)]
    return data


class _DatabaseGone:
    """Make the connection fail at one statement, as a restarted or killed server does."""

    def __init__(self, needle: str) -> None:
        self.needle = needle
        self.fired = 0

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(self.needle):
            self.fired += 1
            msg = "server closed the connection unexpectedly"
            raise OperationalError(statement, parameters, Exception(msg))


@pytest.fixture()
def database_gone():
    """Fail the first INSERT of a problem's event: the problem row is already written."""
    hook = _DatabaseGone("INSERT INTO ISSUE_EVENT")
    engine = db.engine
    event.listen(engine, "before_cursor_execute", hook)
    yield hook
    event.remove(engine, "before_cursor_execute", hook)


def test_database_gone_mid_intake_form_gives_503_and_no_problem(
    client, auth, town, session, app, database_gone
):
    auth.login("inspector")
    response = client.post(
        "/issues/new",
        data=_form("数据库中途断开", photos=[jpeg_bytes()]),
        content_type="multipart/form-data",
    )
    assert database_gone.fired == 1
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "数据库暂时不可用，请稍后重试" in page
    assert "Traceback" not in page and "OperationalError" not in page
    assert _count(session, Issue) == 0
    assert _count(session, IssueEvent) == 0
    assert _count(session, Photo) == 0
    # the photo stored before the problem row is taken back
    assert photo_files(app.config["PHOTO_DIR"]) == []


def test_database_gone_mid_api_intake_gives_json_503(client, town, session, database_gone):
    from app.services.core.passwords import issue_token

    token = issue_token(session, town["users"]["inspector"])
    session.commit()
    lon, lat = west_point(0)
    response = client.post(
        "/api/v1/issues",
        json={"description": "接口上报", "category": "0302", "lon": lon, "lat": lat},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 503
    assert response.get_json() == {"error": "数据库暂时不可用，请稍后重试", "status": 503}
    assert _count(session, Issue) == 0


def test_site_recovers_after_the_database_comes_back(client, auth, town, session, database_gone):
    auth.login("inspector")
    failed = client.post("/issues/new", data=_form("第一次"), content_type="multipart/form-data")
    assert failed.status_code == 503
    database_gone.needle = "NEVER"  # the server is back
    ok = client.post("/issues/new", data=_form("第二次"), content_type="multipart/form-data")
    assert ok.status_code == 302
    assert _count(session, Issue) == 1


def test_unreachable_database_gives_the_503_page(tmp_path):
    """A database that is not there at all (server down, wrong host): a page, not a trace."""
    from app import create_app

    if db.engine.dialect.name == "postgresql":
        url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    else:
        url = f"sqlite:///{tmp_path}/no/such/dir/x.db"
    config = app_config(url, tmp_path)
    broken = create_app(config)
    with broken.app_context():
        response = broken.test_client().post(
            "/login", data={"username": "admin", "password": "password123"}
        )
        assert response.status_code == 503
        assert "数据库暂时不可用" in response.get_data(as_text=True)
        api = broken.test_client().get("/api/v1/issues", headers={"Authorization": "Bearer x"})
        assert api.status_code == 503
        db.session.remove()


def _multipart(description: str, photo: bytes) -> tuple[bytes, str]:
    boundary = "----sanigridfault"
    lon, lat = west_point(0)
    parts = []
    for name, value in (
        ("category", "0302"),
        ("description", description),
        ("lon", str(lon)),
        ("lat", str(lat)),
    ):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + photo
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_upload_cut_short_stores_nothing(client, auth, town, session, app, keep):
    """The phone loses signal halfway through the photo: nothing is stored."""
    auth.login("inspector")
    body, content_type = _multipart("上传中断", jpeg_bytes(size=(640, 480)))
    cut = body[: int(len(body) * keep)]
    response = client.post(
        "/issues/new",
        input_stream=io.BytesIO(cut),
        content_type=content_type,
        environ_overrides={"CONTENT_LENGTH": str(len(body))},
    )
    assert response.status_code == 400
    assert "Traceback" not in response.get_data(as_text=True)
    assert _count(session, Issue) == 0
    assert _count(session, Photo) == 0
    assert photo_files(app.config["PHOTO_DIR"]) == []


def test_whole_upload_still_works(client, auth, town, session, app):
    """The same hand-built body, uncut, is accepted (the cut test tests the cut)."""
    auth.login("inspector")
    body, content_type = _multipart("完整上传", jpeg_bytes(size=(640, 480)))
    response = client.post(
        "/issues/new",
        input_stream=io.BytesIO(body),
        content_type=content_type,
        environ_overrides={"CONTENT_LENGTH": str(len(body))},
    )
    assert response.status_code == 302
    assert _count(session, Issue) == 1 and _count(session, Photo) == 1
    # the photo and its thumbnail, no temporary files
    files = photo_files(app.config["PHOTO_DIR"])
    assert len(files) == 2 and not any(f.name.endswith(".part") for f in files)


class _FullDisk:
    """``os`` for app/services/issues/photos.py whose writes fail with ENOSPC after ``allow`` files."""

    def __init__(self, allow: int = 0) -> None:
        self.allow = allow

    def replace(self, src, dst):
        if self.allow <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        self.allow -= 1
        return os.replace(src, dst)

    def __getattr__(self, name):
        return getattr(os, name)


@pytest.mark.parametrize("allow", [0, 1, 2], ids=["first-file", "thumbnail", "second-photo"])
def test_full_disk_on_photo_upload_fails_cleanly(
    client, auth, town, session, app, monkeypatch, allow
):
    monkeypatch.setattr(photo_service, "os", _FullDisk(allow))
    auth.login("inspector")
    response = client.post(
        "/issues/new",
        data=_form("磁盘已满", photos=[jpeg_bytes(), jpeg_bytes(colour="blue")]),
        content_type="multipart/form-data",
    )
    assert response.status_code == 507
    page = response.get_data(as_text=True)
    assert "磁盘空间不足" in page
    assert "Traceback" not in page and "Errno" not in page
    assert _count(session, Issue) == 0
    assert _count(session, Photo) == 0
    assert photo_files(app.config["PHOTO_DIR"]) == []


def test_full_disk_on_after_photo_keeps_the_problem_unchanged(
    client, auth, town, session, app, monkeypatch, factory
):
    lon, lat = west_point(0)
    issue = factory.issue(town["users"]["inspector"], lon=lon, lat=lat)
    from app.services.issues.intake import transition

    transition(session, town["users"]["admin"], issue.id, "dispatch")
    session.commit()
    version = session.get(Issue, issue.id).version
    monkeypatch.setattr(photo_service, "os", _FullDisk(0))
    auth.login("west")
    response = client.post(
        f"/issues/{issue.id}/act/submit",
        data={
            "version": str(version),
            "note": "已整改",
            "photos": [(io.BytesIO(jpeg_bytes()), "after.jpg")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 507
    session.expire_all()
    assert session.get(Issue, issue.id).status == "dispatched"
    assert _count(session, Photo) == 0
    assert photo_files(app.config["PHOTO_DIR"]) == []


def test_other_os_errors_are_not_called_a_full_disk(client, auth, town, session, app, monkeypatch):
    class _ReadOnly(_FullDisk):
        def replace(self, src, dst):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))

    monkeypatch.setattr(photo_service, "os", _ReadOnly())
    auth.login("inspector")
    response = client.post(
        "/issues/new", data=_form("只读", photos=[jpeg_bytes()]), content_type="multipart/form-data"
    )
    assert response.status_code == 500
    assert "磁盘空间不足" not in response.get_data(as_text=True)
    assert _count(session, Issue) == 0
    assert photo_files(app.config["PHOTO_DIR"]) == []


def test_database_gone_while_signed_in_still_gives_a_chinese_page(client, auth, town):
    """The full error page needs the database (the user, the menu); when every statement
    fails, a plain page in Chinese is shown instead of the server's bare 500."""
    auth.login("admin")
    hook = _DatabaseGone("SELECT")
    event.listen(db.engine, "before_cursor_execute", hook)
    try:
        response = client.get("/issues/")
    finally:
        event.remove(db.engine, "before_cursor_execute", hook)
    body = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "数据库暂时不可用" in body
    assert "Traceback" not in body and "Internal Server Error" not in body
