"""Photos: verified, stripped of EXIF when served, EXIF kept privately, bad files refused."""

from __future__ import annotations

import io
import re
from functools import lru_cache

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.config import current_settings
from app.models import Issue, Photo
from app.services.core.errors import ValidationError
from app.services.issues import photos as photo_service
from tests.factories import (
    bomb_png,
    east_point,
    jpeg_bytes,
    photo_files,
    png_bytes,
    upload,
    west_point,
)


@lru_cache(maxsize=1)
def _bomb() -> bytes:
    return bomb_png(20000)


@pytest.fixture(autouse=True)
def _own_photo_dir(app, tmp_path):
    """Each test stores photos in its own directory, so "nothing left behind" is checkable."""
    app.config["PHOTO_DIR"] = str(tmp_path / "photos")


@pytest.fixture()
def town(factory):
    town = factory.town()
    lon, lat = west_point(0)
    town["issue"] = factory.issue(
        town["users"]["inspector"], lon=lon, lat=lat, description="西区问题"
    )
    lon, lat = east_point(0)
    town["east_issue"] = factory.issue(
        town["users"]["inspector"], lon=lon, lat=lat, description="东区问题"
    )
    return town


def _report(client, description: str, files, **fields):
    data = {"category": "0302", "description": description, **fields, "photos": files}
    return client.post("/issues/new", data=data, content_type="multipart/form-data")


def _count(session, model) -> int:
    session.rollback()
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_jpeg_exif_is_kept_privately_and_stripped_when_served(client, auth, town, session, app):
    lon, lat = west_point(1)
    original = jpeg_bytes(gps=(lon, lat), size=(800, 600))
    auth.login("inspector")
    response = _report(
        client, "带GPS的照片", [upload(original, "IMG_0001.jpg")], lon=f"{lon}", lat=f"{lat}"
    )
    assert response.status_code == 302
    issue = session.execute(select(Issue).where(Issue.description == "带GPS的照片")).scalar_one()
    photo = issue.photos[0]
    # Stored under yyyy/mm/<random hex>.jpg, never the user's file name.
    assert re.fullmatch(r"\d{4}/\d{2}/[0-9a-f]{32}\.jpg", photo.path)
    assert "IMG_0001" not in photo.path
    assert (photo.width, photo.height) == (800, 600)
    import hashlib

    assert photo.sha256 == hashlib.sha256(original).hexdigest()
    assert photo.exif["gps"]["lon"] == pytest.approx(lon, abs=1e-5)
    assert photo.exif["gps"]["lat"] == pytest.approx(lat, abs=1e-5)
    assert photo.exif["Model"] == "TestPhone 12" and photo.exif["Make"] == "TestMaker"

    served = client.get(f"/issues/{issue.id}/photos/{photo.id}")
    assert served.status_code == 200
    assert served.mimetype == "image/jpeg"
    assert "private" in served.headers["Cache-Control"]
    body = served.data
    assert b"Exif" not in body and b"TestPhone" not in body
    with Image.open(io.BytesIO(body)) as image:
        assert image.size == (800, 600)
        assert not image.getexif()
    thumb = client.get(f"/issues/{issue.id}/photos/{photo.id}/thumb")
    assert thumb.status_code == 200 and "private" in thumb.headers["Cache-Control"]
    with Image.open(io.BytesIO(thumb.data)) as image:
        assert max(image.size) <= 320 and not image.getexif()
    # The detail page shows the thumbnail, not the private EXIF.
    html = client.get(f"/issues/{issue.id}").get_data(as_text=True)
    assert f"/issues/{issue.id}/photos/{photo.id}/thumb" in html
    assert "TestPhone" not in html


def test_png_is_stored_as_png(client, auth, town, session):
    auth.login("inspector")
    lon, lat = west_point(2)
    assert (
        _report(
            client, "PNG照片", [upload(png_bytes(), "shot.png")], lon=f"{lon}", lat=f"{lat}"
        ).status_code
        == 302
    )
    issue = session.execute(select(Issue).where(Issue.description == "PNG照片")).scalar_one()
    assert issue.photos[0].path.endswith(".png")
    served = client.get(f"/issues/{issue.id}/photos/{issue.photos[0].id}")
    assert served.mimetype == "image/png" and served.data.startswith(b"\x89PNG")


def test_text_file_renamed_jpg_is_refused_and_nothing_left(client, auth, town, session, app):
    auth.login("inspector")
    lon, lat = west_point(1)
    issues_before = _count(session, Issue)
    response = _report(
        client,
        "假照片",
        [upload(b"hello, I am not a photo\n" * 20, "evil.jpg")],
        lon=f"{lon}",
        lat=f"{lat}",
    )
    assert response.status_code == 400
    assert "evil.jpg" in response.get_data(as_text=True)
    assert _count(session, Issue) == issues_before
    assert _count(session, Photo) == 0
    assert photo_files(app.config["PHOTO_DIR"]) == []


def test_good_then_bad_photo_leaves_nothing(client, auth, town, session, app):
    auth.login("inspector")
    lon, lat = west_point(1)
    response = _report(
        client,
        "一好一坏",
        [upload(jpeg_bytes(), "good.jpg"), upload(b"GIF89a-not-really", "bad.jpg")],
        lon=f"{lon}",
        lat=f"{lat}",
    )
    assert response.status_code == 400 and "bad.jpg" in response.get_data(as_text=True)
    assert _count(session, Photo) == 0
    assert photo_files(app.config["PHOTO_DIR"]) == []


def test_polyglot_jpeg_is_refused(client, auth, town, session, app):
    auth.login("inspector")
    lon, lat = west_point(1)
    polyglot = jpeg_bytes() + b"<html><script>alert(document.cookie)</script></html>"
    # Pillow alone would happily decode this: it is a real JPEG with a web page appended.
    Image.open(io.BytesIO(polyglot)).load()
    response = _report(
        client, "夹带网页", [upload(polyglot, "poly.jpg")], lon=f"{lon}", lat=f"{lat}"
    )
    assert response.status_code == 400
    assert "poly.jpg" in response.get_data(as_text=True)
    assert photo_files(app.config["PHOTO_DIR"]) == []


def test_png_disguised_as_jpeg_is_stored_by_detected_format(app, town, session):
    photo = photo_service.save_photo(
        session,
        town["users"]["admin"],
        town["issue"],
        photo_service.PhotoUpload("looks.jpg", png_bytes()),
        kind="before", settings=current_settings(),
    )
    assert photo.path.endswith(".png")


def test_oversized_photo_is_refused(client, auth, town, session, app):
    app.config["MAX_PHOTO_BYTES"] = 2000
    big = jpeg_bytes(size=(400, 400))
    assert len(big) > 2000
    auth.login("inspector")
    lon, lat = west_point(1)
    response = _report(client, "大照片", [upload(big, "huge.jpg")], lon=f"{lon}", lat=f"{lat}")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "huge.jpg" in html and "超过大小上限" in html
    assert _count(session, Photo) == 0
    assert photo_files(app.config["PHOTO_DIR"]) == []


def test_decompression_bomb_is_refused(app, town, session):
    data = _bomb()
    assert len(data) < 200_000  # a tiny file that would decode to 400 million pixels
    with pytest.raises(ValidationError, match="bomb.png.*像素过多"):
        photo_service.save_photo(
            session,
            town["users"]["admin"],
            town["issue"],
            photo_service.PhotoUpload("bomb.png", data),
            kind="before", settings=current_settings(),
        )
    assert photo_files(app.config["PHOTO_DIR"]) == []


def test_decompression_bomb_through_the_form(client, auth, town, session, app):
    auth.login("inspector")
    lon, lat = west_point(1)
    response = _report(client, "炸弹", [upload(_bomb(), "bomb.png")], lon=f"{lon}", lat=f"{lat}")
    assert response.status_code == 400 and "bomb.png" in response.get_data(as_text=True)
    assert _count(session, Photo) == 0


def test_heic_gets_a_clear_message(app, town, session):
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100
    with pytest.raises(ValidationError, match="HEIC"):
        photo_service.save_photo(
            session,
            town["users"]["admin"],
            town["issue"],
            photo_service.PhotoUpload("IMG_1.HEIC", heic),
            kind="before", settings=current_settings(),
        )


def test_bad_kind_is_refused(app, town, session):
    with pytest.raises(ValidationError, match="照片类型"):
        photo_service.save_photo(
            session,
            town["users"]["admin"],
            town["issue"],
            photo_service.PhotoUpload("a.jpg", jpeg_bytes()),
            kind="during", settings=current_settings(),
        )


def test_interrupted_write_leaves_nothing(app, town, session, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(photo_service.os, "replace", broken_replace)
    with pytest.raises(OSError):
        photo_service.save_photo(
            session,
            town["users"]["admin"],
            town["issue"],
            photo_service.PhotoUpload("a.jpg", jpeg_bytes()),
            kind="before", settings=current_settings(),
        )
    assert photo_files(app.config["PHOTO_DIR"]) == []


def test_save_photo_checks_access(app, town, session):
    from app.services.core.errors import NotFoundError

    with pytest.raises(NotFoundError):
        photo_service.save_photo(
            session,
            town["users"]["east"],
            town["issue"],
            photo_service.PhotoUpload("a.jpg", jpeg_bytes()),
            kind="after", settings=current_settings(),
        )


def test_foreign_unit_head_cannot_fetch_photo(client, auth, town, session):
    west_photo = photo_service.save_photo(
        session,
        town["users"]["admin"],
        town["issue"],
        photo_service.PhotoUpload("a.jpg", jpeg_bytes()),
        kind="before", settings=current_settings(),
    )
    east_photo = photo_service.save_photo(
        session,
        town["users"]["admin"],
        town["east_issue"],
        photo_service.PhotoUpload("b.jpg", jpeg_bytes()),
        kind="before", settings=current_settings(),
    )
    session.commit()
    west_id, east_id = town["issue"].id, town["east_issue"].id
    auth.login("east")
    assert client.get(f"/issues/{west_id}/photos/{west_photo.id}").status_code == 404
    assert client.get(f"/issues/{west_id}/photos/{west_photo.id}/thumb").status_code == 404
    # Nor through its own issue's URL with the other photo's id.
    assert client.get(f"/issues/{east_id}/photos/{west_photo.id}").status_code == 404
    assert client.get(f"/issues/{east_id}/photos/{east_photo.id}").status_code == 200
    auth.login("west")
    assert client.get(f"/issues/{west_id}/photos/{west_photo.id}").status_code == 200
    auth.logout()
    response = client.get(f"/issues/{west_id}/photos/{west_photo.id}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# ---- 整改前 / 整改后: the upload's kind choice ----------------------------------------


def _post_photo(client, session, issue_id: int, action: str, data: bytes, name: str = "p.jpg"):
    from app.models import Issue

    session.expire_all()
    version = session.get(Issue, issue_id).version
    return client.post(
        f"/issues/{issue_id}/act/{action}",
        data={"version": str(version), "photos": [(io.BytesIO(data), name)]},
        content_type="multipart/form-data",
    )


def test_inspector_and_unit_add_before_and_after_photos(client, auth, town, session):
    from app.models import Issue, IssueEvent

    issue_id = town["issue"].id
    auth.login("inspector")
    assert _post_photo(client, session, issue_id, "photo_before", jpeg_bytes()).status_code == 302
    auth.login("west")
    assert _post_photo(client, session, issue_id, "photo_before", jpeg_bytes()).status_code == 302
    assert _post_photo(client, session, issue_id, "photo_after", jpeg_bytes()).status_code == 302
    session.expire_all()
    issue = session.get(Issue, issue_id)
    kinds = sorted(p.kind for p in issue.photos)
    assert kinds.count("after") == 1 and kinds.count("before") >= 2
    events = session.execute(
        select(IssueEvent).where(IssueEvent.issue_id == issue_id, IssueEvent.action == "photo")
    ).scalars().all()
    assert [e.data["kind"] for e in events] == ["before", "before", "after"]
    html = client.get(f"/issues/{issue_id}").get_data(as_text=True)
    before_part = html.split('class="photos-before"')[1].split('class="photos-after"')[0]
    after_part = html.split('class="photos-after"')[1].split("</div>")[0]
    assert before_part.count("/thumb") >= 2 and after_part.count("/thumb") == 1


def test_leader_and_foreign_unit_cannot_add_photos(client, auth, town, session):
    issue_id = town["issue"].id
    auth.login("leader")
    assert _post_photo(client, session, issue_id, "photo_after", jpeg_bytes()).status_code == 403
    auth.login("east")
    assert _post_photo(client, session, issue_id, "photo_after", jpeg_bytes()).status_code == 404
    from app.models import Photo

    assert not session.execute(
        select(Photo).where(Photo.issue_id == issue_id, Photo.kind == "after")).scalars().all()


def test_closed_problem_takes_no_more_photos(client, auth, town, session):
    from app.models import Issue

    issue_id = town["issue"].id
    session.get(Issue, issue_id).status = "closed"
    session.commit()
    auth.login("west")
    response = _post_photo(client, session, issue_id, "photo_after", jpeg_bytes())
    assert response.status_code == 409 and "不能再上传照片" in response.get_data(as_text=True)
