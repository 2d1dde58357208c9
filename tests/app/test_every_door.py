"""Walk every door: each URL rule × method × kind of user against an explicit expectation.

The table RULES below names, for every route the application serves, the status each kind
of user must get when the route's arguments point at objects of the WEST unit:

    anonymous  no session, no token
    admin, inspector, leader
    own        the west unit's head (the objects are theirs)
    foreign    the east unit's head (the objects are another unit's: 404, never a peek)

The test fails for a route missing from the table (a new door without an access rule), for
a table entry whose route is gone, and for any status that differs. State-changing methods
run the refused users first and check the database did not change at all; a user who may
change something runs on a freshly built world. Every body a foreign unit head reads is
also searched for the west problem's text (a leak canary).

Set DOORWALK_DUMP=1 to print the observed statuses of every rule (for writing entries).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from tests.factories import (
    Factory,
    app_config,
    east_point,
    empty_tables,
    fresh_user_per_request,
    west_point,
)

ROLES = ("anonymous", "admin", "inspector", "leader", "own", "foreign")
USERNAMES = {
    "admin": "admin",
    "inspector": "inspector",
    "leader": "leader",
    "own": "west",
    "foreign": "east",
}
CANARY = "西区专属金丝雀问题-7Q"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
LOGIN = "login"  # shorthand: a redirect to the login page (refused: not signed in)
SIGNED_OUT = "signed_out"  # also a redirect to /login, but after a successful sign-out


@dataclass(frozen=True)
class Expect:
    """Expected status per kind of user; ``LOGIN`` means a 302 to /login."""

    anonymous: int | str
    admin: int | tuple
    inspector: int | tuple
    leader: int | tuple
    own: int | tuple
    foreign: int | tuple
    args: dict = field(default_factory=dict)  # URL argument overrides (by name)
    data: dict | None = None  # form fields (or JSON body for API routes)
    api: bool = False  # authenticate with a bearer token instead of a session


def page(anon=LOGIN, admin=200, inspector=200, leader=200, own=200, foreign=200, **kw):
    return Expect(anon, admin, inspector, leader, own, foreign, **kw)


def api(anon=401, admin=200, inspector=200, leader=200, own=200, foreign=200, **kw):
    return Expect(anon, admin, inspector, leader, own, foreign, api=True, **kw)


def admin_only(admin=200, **kw):
    """Account administration: 403 for every signed-in non-admin, whatever the object."""
    return page(LOGIN, admin, 403, 403, 403, 403, **kw)


RULES: dict[tuple[str, str], Expect] = {
    # ---- public: the login form and local assets (no outside hosts, nothing private)
    ("GET", "/login"): page(200, 200, 200, 200, 200, 200),
    # An empty form is a failed login for everyone (and counts towards the lockout).
    ("POST", "/login"): page(401, 401, 401, 401, 401, 401),
    ("GET", "/static/<path:filename>"): page(200, 200, 200, 200, 200, 200),
    ("GET", "/vendor/<package>/<path:filename>"): page(
        200, 200, 200, 200, 200, 200, args={"filename": "leaflet.js"}
    ),
    # ---- own account
    ("POST", "/logout"): page(LOGIN, *[SIGNED_OUT] * 5),
    ("POST", "/logout-everywhere"): page(LOGIN, *[SIGNED_OUT] * 5),
    ("GET", "/password"): page(),
    # Wrong old password: refused with a message, for everyone alike.
    ("POST", "/password"): page(LOGIN, 400, 400, 400, 400, 400),
    # ---- own notices (the bell): each user reads and marks only their own
    ("GET", "/notifications/"): page(),
    ("GET", "/notifications/count.json"): page(),
    # No id chosen: nothing to mark, back to the list, for everyone alike.
    ("POST", "/notifications/mark-read"): page(LOGIN, 302, 302, 302, 302, 302),
    # ---- map and problems (a unit head sees their own unit's problems only)
    ("GET", "/"): page(),
    ("GET", "/issues/"): page(),
    ("GET", "/issues/export.xlsx"): page(),
    ("GET", "/issues/<int:issue_id>"): page(foreign=404),
    ("GET", "/issues/<int:issue_id>/photos/<int:photo_id>"): page(foreign=404),
    ("GET", "/issues/<int:issue_id>/photos/<int:photo_id>/thumb"): page(foreign=404),
    ("GET", "/issues/new"): page(leader=403),
    # Empty report form: validation (400) for those who may report, 403 for the leader.
    ("POST", "/issues/new"): page(LOGIN, 400, 400, 403, 400, 400),
    ("GET", "/issues/queue"): page(own=403, foreign=403, leader=403),
    # "start" (开始整改) on the west problem: the west unit's own work; admins may too.
    ("POST", "/issues/<int:issue_id>/act/<action>"): page(
        LOGIN, 302, 403, 403, 302, 404, data={"version": "@version"}
    ),
    # The problem is already placed: 400 after the access check for those who may place.
    ("POST", "/issues/<int:issue_id>/place"): page(LOGIN, 400, 400, 403, 403, 404),
    # ---- feedback batches (反馈批次): the door world has no batch, so a batch id is 404
    # after the role check; dispatch and 复核 are the admin's (403 for other roles first).
    ("GET", "/batches/"): page(),
    ("GET", "/batches/<int:batch_id>"): page(LOGIN, *[404] * 5, args={"batch_id": 999999}),
    ("POST", "/batches/<int:batch_id>/conflicts"): page(
        LOGIN, *[404] * 5, args={"batch_id": 999999}
    ),
    ("GET", "/batches/<int:batch_id>/dispatch"): page(
        LOGIN, 404, 403, 403, 403, 403, args={"batch_id": 999999}
    ),
    ("POST", "/batches/<int:batch_id>/dispatch"): page(
        LOGIN, 404, 403, 403, 403, 403, args={"batch_id": 999999}
    ),
    ("GET", "/batches/dispatch"): page(LOGIN, 200, 403, 403, 403, 403),
    ("POST", "/batches/dispatch"): page(LOGIN, 400, 403, 403, 403, 403),  # nothing ticked
    ("GET", "/batches/<int:batch_id>/ledger.xlsx"): page(
        LOGIN, *[404] * 5, args={"batch_id": 999999}
    ),
    ("GET", "/batches/<int:batch_id>/ledger.docx"): page(
        LOGIN, *[404] * 5, args={"batch_id": 999999}
    ),
    ("POST", "/batches/<int:batch_id>/recheck"): page(
        LOGIN, 404, 403, 403, 403, 403, args={"batch_id": 999999}
    ),
    ("GET", "/api/v1/batches"): api(),
    ("GET", "/api/v1/batches/<int:batch_id>"): api(
        401, *[404] * 5, args={"batch_id": 999999}
    ),
    ("POST", "/api/v1/batches/<int:batch_id>/dispatch"): api(
        401, 404, 403, 403, 403, 403, args={"batch_id": 999999}
    ),
    # ---- importing inspection lists (admin; the upload belongs to the admin who made it)
    ("GET", "/issues/import/"): admin_only(),
    ("POST", "/issues/import/"): admin_only(400),
    ("GET", "/issues/import/<token>"): admin_only(),
    ("POST", "/issues/import/<token>"): admin_only(400),
    ("GET", "/issues/import/<token>/result"): admin_only(302),
    ("GET", "/issues/import/<token>/rejected.xlsx"): admin_only(404),
    # ---- grids and layers (unit heads: their own area only, under /units)
    ("GET", "/grids/"): page(own=403, foreign=403),
    ("GET", "/grids/<int:grid_id>/report"): page(own=403, foreign=403),
    # A unit head's grid export holds their own cells only (checked by the canary).
    ("GET", "/grids/<int:grid_id>/export/<fmt>"): page(),
    ("POST", "/grids/<int:grid_id>/activate"): admin_only(302),
    ("GET", "/grids/<int:grid_id>/assign"): admin_only(),
    ("POST", "/grids/<int:grid_id>/assign"): admin_only(400),
    ("POST", "/grids/<int:grid_id>/assign/table"): admin_only(400),
    ("GET", "/grids/layers"): page(own=403, foreign=403),
    # Only admins store layers (manage_grid): 403 for the others. (The door walk caught this
    # view answering them 400 after catching the ForbiddenError; fixed.) Admin, no file: 400.
    ("POST", "/grids/layers"): page(LOGIN, 400, 403, 403, 403, 403),
    ("GET", "/grids/layers/<int:layer_id>/export/<fmt>"): page(own=403, foreign=403),
    ("GET", "/grids/new"): admin_only(),
    ("POST", "/grids/new"): admin_only(400),
    ("GET", "/grids/upload"): admin_only(),
    ("POST", "/grids/upload"): admin_only(400),
    # ---- map data behind the home page (scoped like the map itself)
    ("GET", "/map/cells.geojson"): page(),
    ("GET", "/map/counts.json"): page(),
    ("GET", "/map/issues.geojson"): page(),
    # ---- units' areas
    ("GET", "/units/"): page(own=302, foreign=302),  # a unit head goes to their own area
    ("GET", "/units/<int:unit_id>"): page(foreign=404),
    ("GET", "/units/<int:unit_id>/cells.<fmt>"): page(foreign=404),
    # ---- patrols (inspectors and admins plan; leaders read; unit heads see none)
    ("GET", "/patrols/"): page(leader=403, own=403, foreign=403),
    ("POST", "/patrols/"): page(LOGIN, 400, 400, 403, 403, 403),
    ("GET", "/patrols/<int:patrol_id>"): page(own=404, foreign=404),
    ("GET", "/patrols/<int:patrol_id>/print"): page(own=404, foreign=404),
    ("GET", "/patrols/<int:patrol_id>/sheet.pdf"): page(own=404, foreign=404),
    ("GET", "/patrols/<int:patrol_id>/route.<fmt>"): page(own=404, foreign=404),
    ("GET", "/patrols/<int:patrol_id>/results"): page(leader=403, own=404, foreign=404),
    ("POST", "/patrols/<int:patrol_id>/results"): page(LOGIN, 302, 302, 403, 404, 404),
    # ---- monthly assessment (rankings are published to everyone; details stay scoped)
    ("GET", "/reports/"): page(),
    ("GET", "/reports/print"): page(),
    ("GET", "/reports/export.xlsx"): page(),
    ("GET", "/reports/readiness"): page(),
    ("GET", "/reports/<month>/units/<int:unit_id>"): page(foreign=404),
    # Already published this month: a republish without a reason is a conflict.
    ("POST", "/reports/publish"): admin_only(409, data={"month": "@month"}),
    # Only unit heads appeal, each for their own unit: west has one pending (409), east
    # files its own (302) and cannot touch west's.
    ("POST", "/reports/appeal"): page(
        LOGIN, 403, 403, 403, 409, 302, data={"month": "@month", "note": "数据有误"}
    ),
    ("POST", "/reports/appeals/<int:appeal_id>/resolve"): admin_only(
        302, data={"resolution": "已复核", "month": "@month"}
    ),
    ("POST", "/reports/settings"): admin_only(302),
    ("POST", "/reports/readiness/calendar"): admin_only(302),
    # ---- account administration (admins only)
    ("GET", "/admin/users"): admin_only(),
    ("POST", "/admin/users"): admin_only(data={"username": "newbie", "role": "inspector"}),
    ("GET", "/admin/users/<int:user_id>"): admin_only(),
    ("POST", "/admin/users/<int:user_id>"): admin_only(
        302, data={"role": "unit_head", "unit_id": "@east_unit_id"}
    ),
    ("POST", "/admin/users/<int:user_id>/reset-password"): admin_only(),
    ("POST", "/admin/users/<int:user_id>/disable"): admin_only(302),
    ("POST", "/admin/users/<int:user_id>/enable"): admin_only(302),
    ("POST", "/admin/users/<int:user_id>/logout-everywhere"): admin_only(302),
    ("GET", "/admin/users/<int:user_id>/tokens"): admin_only(),
    ("POST", "/admin/users/<int:user_id>/tokens"): admin_only(),
    ("POST", "/admin/tokens/<int:token_id>/revoke"): admin_only(302),
    ("GET", "/admin/units"): admin_only(),
    ("POST", "/admin/units"): admin_only(302, data={"name": "新建单位"}),
    ("GET", "/admin/units/<int:unit_id>"): admin_only(),
    ("POST", "/admin/units/<int:unit_id>"): admin_only(302, data={"name": "西区单位(改)"}),
    ("POST", "/admin/units/<int:unit_id>/disable"): admin_only(302),
    ("POST", "/admin/units/<int:unit_id>/enable"): admin_only(302),
    ("GET", "/admin/roster"): admin_only(),
    ("POST", "/admin/roster"): admin_only(400),
    ("GET", "/admin/roster/<token>"): admin_only(),
    ("POST", "/admin/roster/<token>"): admin_only(),
    ("GET", "/admin/roster/<token>/passwords.xlsx"): admin_only(404),  # nothing imported yet
    ("GET", "/admin/audit"): admin_only(),
    # ---- the admin's yearly tables: holiday calendar and geocoder aliases
    ("GET", "/admin/tables/holidays"): admin_only(),
    ("GET", "/admin/tables/holidays/<int:year>"): admin_only(args={"year": 2027}),
    ("POST", "/admin/tables/holidays/import"): admin_only(400),  # no file
    ("POST", "/admin/tables/holidays/import/confirm"): admin_only(400),  # no year, no rows
    ("GET", "/admin/tables/aliases"): admin_only(),
    ("POST", "/admin/tables/aliases"): admin_only(400),  # empty alias
    ("POST", "/admin/tables/aliases/delete"): admin_only(404),  # no such alias
    ("POST", "/admin/tables/aliases/import"): admin_only(400),  # no file
    ("GET", "/admin/tables/unit-aliases/"): admin_only(),
    ("POST", "/admin/tables/unit-aliases/"): admin_only(400),  # empty alias
    ("POST", "/admin/tables/unit-aliases/delete"): admin_only(404),  # no such alias
    ("POST", "/admin/tables/unit-aliases/import"): admin_only(400),  # no file
    # ---- the category table, its synonyms and the 待分类 queue (admins; issue #11)
    ("GET", "/admin/tables/categories"): admin_only(),
    ("POST", "/admin/tables/categories/<code>"): admin_only(400, args={"code": "0302"}),  # no name
    ("POST", "/admin/tables/categories/import"): admin_only(400),  # no file
    ("GET", "/admin/tables/category-aliases"): admin_only(),
    ("POST", "/admin/tables/category-aliases"): admin_only(400),  # empty alias
    ("POST", "/admin/tables/category-aliases/delete"): admin_only(404),  # no such alias
    ("POST", "/admin/tables/category-aliases/import"): admin_only(400),  # no file
    ("GET", "/issues/pending/"): admin_only(),
    ("POST", "/issues/pending/"): admin_only(400),  # nothing ticked
    ("POST", "/issues/pending/settings"): admin_only(400),  # no number of days
    # ---- 系统初始化检查 and the progress of background layer imports (admin)
    # ---- 消息通道: channel settings, test messages, the outbox (admin)
    ("GET", "/admin/notify/"): admin_only(),
    ("POST", "/admin/notify/"): admin_only(302, data={"quiet_start": "", "quiet_end": ""}),
    ("POST", "/admin/notify/test/<channel>"): admin_only(  # no webhook configured
        400, args={"channel": "webhook"}
    ),
    ("POST", "/admin/notify/outbox/<int:message_id>/retry"): admin_only(  # no such message
        404, args={"message_id": 999999}
    ),
    ("GET", "/admin/setup/"): admin_only(),
    ("GET", "/admin/setup/layer-jobs/<token>"): admin_only(  # no such job
        404, args={"token": "nosuchlayerjob0000000000"}
    ),
    # ---- JSON API (bearer tokens only)
    ("GET", "/api/v1/openapi.json"): api(200),
    ("GET", "/api/v1/issues"): api(),
    ("GET", "/api/v1/issues/<int:issue_id>"): api(foreign=404),
    ("GET", "/api/v1/issues/<int:issue_id>/photos/<int:photo_id>"): api(foreign=404),
    # Empty body: 400 for those who may report; the leader may not report at all.
    ("POST", "/api/v1/issues"): api(401, 400, 400, 403, 400, 400),
    ("POST", "/api/v1/issues/<int:issue_id>/actions"): api(
        401, 200, 403, 403, 200, 404, data={"action": "start", "version": "@version"}
    ),
    ("POST", "/api/v1/issues/<int:issue_id>/place"): api(401, 400, 400, 403, 403, 404),
    ("POST", "/api/v1/issues/<int:issue_id>/photos"): api(401, 400, 400, 403, 400, 404),
    ("GET", "/api/v1/cells"): api(),
    ("GET", "/api/v1/cells/<int:cell_id>"): api(foreign=404),
    ("GET", "/api/v1/units"): api(),
    ("GET", "/api/v1/units/<int:unit_id>"): api(foreign=404),
    ("GET", "/api/v1/patrols"): api(),  # an empty list for unit heads
    ("GET", "/api/v1/patrols/<int:patrol_id>"): api(own=404, foreign=404),
    ("POST", "/api/v1/patrols"): api(401, 400, 400, 403, 403, 403),
    ("GET", "/api/v1/reports"): api(),
    # ---- Open311 GeoReport v2
    ("GET", "/open311/v2/services.<fmt>"): api(),
    ("GET", "/open311/v2/requests.<fmt>"): api(),
    ("GET", "/open311/v2/requests/<int:request_id>.<fmt>"): api(foreign=404),
    ("POST", "/open311/v2/requests.<fmt>"): api(401, 400, 400, 403, 400, 400),
    # ---- OGC API - Features (token, or the signed-in session for GETs)
    ("GET", "/ogc/"): api(),
    ("GET", "/ogc/api"): api(),
    ("GET", "/ogc/conformance"): api(),
    ("GET", "/ogc/collections"): api(),
    ("GET", "/ogc/collections/<collection_id>"): api(),
    ("GET", "/ogc/collections/<collection_id>/items"): api(),
    ("GET", "/ogc/collections/<collection_id>/items/<fid>"): api(foreign=404),
}


# ---------------------------------------------------------------------- the world


@dataclass
class World:
    ids: dict
    tokens: dict
    generation: int = 0


def _cheap_hash(password: str) -> str:
    # The door walk logs in hundreds of times; scrypt's cost is tested in test_auth.
    return generate_password_hash(password, method="pbkdf2:sha256:1000")


def build_world(app, tmp) -> World:
    """Two units, their users, problems, photos, a patrol, a published month, tokens."""
    from app.config import current_settings
    from app.extensions import db
    from app.models import Feature, Layer, Patrol, Stop, User
    from app.services.assessment import appeals, months, publish
    from app.services.core.cache import reset_caches
    from app.services.core.passwords import issue_token
    from app.services.imports import sheet as list_import
    from app.services.issues import photos as photo_service
    from app.services.issues.intake import transition
    from app.services.tables import roster

    empty_tables(app)
    reset_caches()
    session = db.session
    factory = Factory(session)
    west, east = factory.unit("西区单位"), factory.unit("东区单位")
    grid = factory.grid(west, east)
    factory.category()
    users = {}
    for role_key, username in USERNAMES.items():
        role = "unit_head" if role_key in ("own", "foreign") else role_key
        unit = west if role_key == "own" else east if role_key == "foreign" else None
        users[role_key] = User(
            username=username, role=role, unit=unit, password_hash=_cheap_hash("password123")
        )
        session.add(users[role_key])
    session.flush()
    from shapely.geometry import box

    layer = Layer(name="建成区边界", kind="boundary")
    feature = Feature(layer=layer, name="建成区")
    feature.set_geometry(box(103.5, 22.796, 103.504, 22.8))
    session.add_all([layer, feature])
    session.commit()
    issue = factory.issue(
        users["inspector"], lon=west_point(0)[0], lat=west_point(0)[1], description=CANARY
    )
    east_issue = factory.issue(
        users["inspector"], lon=east_point(0)[0], lat=east_point(0)[1], description="东区问题"
    )
    transition(session, users["admin"], issue.id, "dispatch")
    from PIL import Image
    from werkzeug.datastructures import FileStorage

    buf = io.BytesIO()
    Image.new("RGB", (16, 12), "red").save(buf, format="JPEG")
    photo = photo_service.save_photo(
        session,
        users["inspector"],
        issue,
        FileStorage(io.BytesIO(buf.getvalue()), filename="a.jpg"),
        kind="before", settings=current_settings(),
    )
    patrol = Patrol(
        name="西区巡查", inspector_id=users["inspector"].id, created_by_id=users["admin"].id
    )
    patrol.stops.append(
        Stop(seq=1, issue_id=issue.id, lon=issue.lon, lat=issue.lat, label="西区问题点")
    )
    session.add(patrol)
    session.commit()
    month = months.default_month()
    publish.publish_all(session, users["admin"], month)
    appeal = appeals.attach_appeal(session, users["own"], month, "西区申诉")
    tokens = {key: issue_token(session, user, name="door") for key, user in users.items()}
    session.commit()
    from app.models import ApiToken

    west_token = session.execute(
        select(ApiToken.id).where(ApiToken.user_id == users["own"].id)
    ).scalar_one()
    csv = "序号,问题描述,问题地点\n1,路面有垃圾,西区\n".encode()
    import_token = list_import.store_list(tmp / "imports", users["admin"], csv, "清单.csv")
    roster_token = roster.store_roster_upload(
        tmp / "roster",
        users["admin"],
        "单位,姓名,手机号,角色\n,甲,13900001111,督查员\n".encode(),
        "r.csv",
    )
    ids = {
        "issue_id": issue.id,
        "cell_id": issue.cell_id,
        "west_cell_code": issue.cell.code,
        "request_id": issue.id,
        "east_issue_id": east_issue.id,
        "photo_id": photo.id,
        "patrol_id": patrol.id,
        "unit_id": west.id,
        "east_unit_id": east.id,
        "user_id": users["own"].id,
        "token_id": west_token,
        "grid_id": grid.id,
        "layer_id": layer.id,
        "month": month,
        "appeal_id": appeal.id,
        "import_token": import_token,
        "roster_token": roster_token,
        "version": issue.version,
    }
    db.session.remove()
    return World(ids=ids, tokens=tokens)


def snapshot(app) -> dict:
    """Every row of every table except the audit log (appends there are fine)."""
    from app.extensions import db

    db.session.expire_all()
    state = {}
    for table in db.metadata.sorted_tables:
        # Logging in writes sessions and throttle rows; the audit log is append-only.
        if table.name in ("audit_log", "user_session", "login_throttle"):
            continue
        rows = db.session.execute(select(table)).all()
        state[table.name] = sorted(tuple(str(v) for v in row) for row in rows)
    db.session.rollback()
    return state


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def door(_unit_database, tmp_path_factory):
    from app import create_app

    url, tmp = _unit_database
    work = tmp_path_factory.mktemp("doors")
    config = app_config(url, tmp)
    config.update(
        IMPORT_UPLOAD_DIR=str(work / "imports"),
        ROSTER_UPLOAD_DIR=str(work / "roster"),
        PHOTO_DIR=str(work / "photos"),
    )
    app = create_app(config)
    fresh_user_per_request(app)
    with app.app_context():
        state = {"app": app, "tmp": work, "world": build_world(app, work), "clients": {}}
        yield state
        from app.extensions import db

        db.session.remove()


def _rebuild(door) -> None:
    gen = door["world"].generation + 1
    door["world"] = build_world(door["app"], door["tmp"])
    door["world"].generation = gen
    door["clients"] = {}


def _client(door, role: str):
    clients = door["clients"]
    if role not in clients:
        client = door["app"].test_client()
        if role != "anonymous":
            response = client.post(
                "/login", data={"username": USERNAMES[role], "password": "password123"}
            )
            assert response.status_code == 302, f"{role} could not sign in"
        clients[role] = client
    return clients[role]


# ---------------------------------------------------------------------- walking


STATIC_ARGS = {
    "filename": "css/app.css",
    "package": "leaflet",
    "collection_id": "issues",
    "action": "start",
}


def _url(rule, world: World, expect: Expect) -> str:
    from flask import current_app, url_for

    values = {}
    for name in rule.arguments:
        if name in expect.args:
            value = expect.args[name]
            values[name] = world.ids.get(value, value) if isinstance(value, str) else value
        elif name == "token":
            values[name] = world.ids[
                "roster_token" if rule.rule.startswith("/admin") else "import_token"
            ]
        elif name == "fmt":
            values[name] = (
                "json"
                if rule.rule.startswith("/open311")
                else "gpx"
                if rule.rule.startswith("/patrols")
                else "geojson"
            )
        elif name == "fid":
            values[name] = str(world.ids["issue_id"])
        elif name in STATIC_ARGS:
            values[name] = STATIC_ARGS[name]
        else:
            values[name] = world.ids[name]
    with current_app.test_request_context():
        return url_for(rule.endpoint, **values)


def _payload(expect: Expect, world: World) -> dict | None:
    if expect.data is None:
        return None
    out = {}
    for key, value in expect.data.items():
        if isinstance(value, str) and value.startswith("@"):
            value = world.ids[value[1:]]
        out[key] = value
    return out


def _call(door, role: str, method: str, rule, expect: Expect):
    world = door["world"]
    url = _url(rule, world, expect)
    payload = _payload(expect, world)
    if expect.api:
        client = door["app"].test_client()
        headers = {} if role == "anonymous" else {"Authorization": f"Bearer {world.tokens[role]}"}
        if method == "GET":
            return url, client.get(url, headers=headers, query_string=payload)
        if rule.rule.startswith("/open311"):
            return url, client.open(url, method=method, headers=headers, data=payload or {})
        return url, client.open(url, method=method, headers=headers, json=payload or {})
    client = _client(door, role)
    if method == "GET":
        return url, client.get(url, query_string=payload)
    return url, client.open(url, method=method, data=payload or {})


def _matches(expected, response) -> bool:
    options = expected if isinstance(expected, tuple) else (expected,)
    for option in options:
        if option in (LOGIN, SIGNED_OUT):
            if response.status_code == 302 and "/login" in response.headers.get("Location", ""):
                return True
        elif response.status_code == option:
            return True
    return False


def _body_text(response) -> str:
    """The body as text; a zip (xlsx, shapefile) is searched member by member, with XML
    character references (how openpyxl writes inline strings) read as the text they stand for."""
    data = response.get_data()
    if data.startswith(b"PK\x03\x04"):
        import html
        import zipfile

        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            data = b"".join(archive.read(name) for name in archive.namelist())
        return html.unescape(data.decode("utf-8", errors="replace"))
    return data.decode("utf-8", errors="replace")


def _leaks(response, world: World) -> list[str]:
    """West things a foreign unit head's 200 response must not contain."""
    if response.status_code != 200:
        return []
    body = _body_text(response)
    return [
        label
        for label, needle in (
            ("the west problem", CANARY),
            ("a west cell code", world.ids["west_cell_code"]),
        )
        if needle in body
    ]


def _excerpt(response) -> str:
    """What the page says (tags, head and navigation stripped), shortened."""
    body = _body_text(response)
    body = re.sub(r"(?s)<head>.*?</head>|<header.*?</header>|<script.*?</script>", "", body)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()[:160]


def _observed(response) -> str:
    if response.status_code == 302 and "/login" in response.headers.get("Location", ""):
        return "LOGIN"
    return str(response.status_code)


def _all_rules(app) -> list[tuple[str, object]]:
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, rule))
    return sorted(out, key=lambda p: (p[1].rule, p[0]))


def _walk(door, method: str, rule, expect: Expect) -> list[str]:
    """Call the rule as every kind of user; return the differences from the table."""
    problems = []
    mutating = method in MUTATING
    if door.get("dirty"):
        _rebuild(door)
        door["dirty"] = False
    expected = {role: getattr(expect, role) for role in ROLES}
    # Refused users first, on an unchanged world; then each permitted user on a fresh one.
    refused = [r for r in ROLES if _is_refusal(expected[r])]
    permitted = [r for r in ROLES if r not in refused]
    for role in refused + permitted:
        if mutating and role in permitted and door.get("dirty"):
            _rebuild(door)
            door["dirty"] = False
        before = snapshot(door["app"]) if mutating else None
        url, response = _call(door, role, method, rule, expect)
        if not _matches(expected[role], response):
            body = _excerpt(response)
            problems.append(
                f"{method} {url} as {role}: expected {expected[role]}, got "
                f"{_observed(response)} ({body})"
            )
        if role == "foreign":
            problems += [
                f"{method} {url} as foreign unit head: shows {leak}"
                for leak in _leaks(response, door["world"])
            ]
        if mutating:
            after = snapshot(door["app"])
            if role in refused and after != before:
                changed = [t for t in after if after[t] != before.get(t)]
                problems.append(f"{method} {url} as {role}: refused but changed {changed}")
                door["dirty"] = True
            elif after != before:
                door["dirty"] = True
        if mutating:
            # The call may have ended its own session (logout, password, role change...).
            door["clients"].pop(role, None)
    return problems


def _is_refusal(expected) -> bool:
    options = expected if isinstance(expected, tuple) else (expected,)
    return all(o in (LOGIN, 401, 403, 404, 405) for o in options)


def test_every_rule_has_an_expectation(door):
    served = {(m, r.rule) for m, r in _all_rules(door["app"])}
    missing = sorted(served - RULES.keys())
    gone = sorted(RULES.keys() - served)
    assert not missing, "new route without an access rule: " + ", ".join(
        f"{m} {r}" for m, r in missing
    )
    assert not gone, "access rule for a route that no longer exists: " + ", ".join(
        f"{m} {r}" for m, r in gone
    )


def test_every_door(door):
    if os.environ.get("DOORWALK_DUMP"):
        _dump(door)
    problems = []
    for method, rule in _all_rules(door["app"]):
        expect = RULES.get((method, rule.rule))
        if expect is None:
            continue  # reported by test_every_rule_has_an_expectation
        problems += _walk(door, method, rule, expect)
    assert not problems, f"{len(problems)} doors behave wrongly:\n" + "\n".join(problems)


def test_the_leak_canaries_are_real(door):
    """The canaries appear where the west unit may look, so their absence means something."""
    ids = door["world"].ids
    own = _client(door, "own")
    assert CANARY in own.get(f"/issues/{ids['issue_id']}").get_data(as_text=True)
    cells = own.get(f"/units/{ids['unit_id']}/cells.geojson")
    assert ids["west_cell_code"] in _body_text(cells)
    export = own.get("/issues/export.xlsx")
    assert CANARY in _body_text(export)


def test_leader_changes_nothing_anywhere(door):
    """The read-only role gets 403 (or a refusal) on every state-changing route."""
    wrong = [
        f"{m} {rule}"
        for (m, rule), e in RULES.items()
        if m in MUTATING
        and rule not in ("/logout", "/logout-everywhere", "/password", "/login",
                         "/notifications/mark-read")  # one's own account and notices
        and not _is_refusal(e.leader)
    ]
    assert not wrong, "leader may change: " + ", ".join(wrong)


def test_foreign_unit_head_is_refused_every_change(door):
    """Every change aimed at a west object (an id in the URL) is refused to the east head."""
    wrong = [
        f"{m} {rule}"
        for (m, rule), e in RULES.items()
        if m in MUTATING
        and re.search(r"<(int:)?\w+_id>|<token>", rule)
        and not _is_refusal(e.foreign)
    ]
    assert not wrong, "foreign unit head may change: " + ", ".join(wrong)


def _dump(door) -> None:
    lines = []
    for method, rule in _all_rules(door["app"]):
        expect = RULES.get((method, rule.rule)) or page()
        if expect.api is False and rule.rule.startswith(("/api/", "/open311/", "/ogc")):
            expect = Expect(
                *(getattr(expect, r) for r in ROLES), args=expect.args, data=expect.data, api=True
            )
        seen = []
        for role in ROLES:
            if method in MUTATING and door.get("dirty"):
                _rebuild(door)
                door["dirty"] = False
            before = snapshot(door["app"]) if method in MUTATING else None
            _, response = _call(door, role, method, rule, expect)
            seen.append(_observed(response))
            if method in MUTATING:
                door["clients"] = {}
                if snapshot(door["app"]) != before:
                    door["dirty"] = True
        lines.append(f"{method:5} {rule.rule:55} " + " ".join(f"{s:>5}" for s in seen))
    print("\n".join(lines))
    _rebuild(door)
    door["dirty"] = False
