"""The caches on the intake and map paths (issue #13 defect 13) never serve stale data."""

import gzip
import json

from sqlalchemy import select

from tests.factories import east_point, west_point


def test_category_matcher_follows_renames_and_new_synonyms(factory, session):
    from app.models import Category, CategoryAlias
    from app.services.tables.category_match import CategoryMatcher, match_category

    factory.town()
    session.commit()
    assert CategoryMatcher(session).match("背街小巷").category.code == "0302"
    # The session's shared matcher is built here, before the synonym exists.
    assert match_category(session, "牛皮癣").pending

    # A synonym added in this session: seen at once, flushed or not.
    session.add(CategoryAlias(alias="牛皮癣", category_code="0302"))
    assert match_category(session, "牛皮癣").category.code == "0302"
    session.commit()
    assert match_category(session, "牛皮癣").method == "alias"

    # A renamed category: a new matcher knows the new name only (the lookup tables are
    # shared between matchers, so they must follow the rows).
    cat = session.execute(select(Category).where(Category.code == "0302")).scalar_one()
    cat.name = "后街小巷"
    session.commit()
    matcher = CategoryMatcher(session)
    assert matcher.match("后街小巷").method == "name"
    assert matcher.match("后街小巷").category is cat
    assert matcher.match("背街小巷").method != "name"


def test_report_through_the_api_is_routed_dated_and_written_once(client, factory, session):
    from app.models import Issue, IssueEvent
    from app.services.core.passwords import issue_token

    town = factory.town()
    token = issue_token(session, town["users"]["inspector"])
    session.commit()
    lon, lat = west_point(0)
    response = client.post("/api/v1/issues", json={
        "description": "路面垃圾", "category": "0302", "lon": lon, "lat": lat},
        headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.get_json()
    issue = session.get(Issue, response.get_json()["id"])
    assert issue.unit.name == "西区单位" and issue.cell is not None
    assert issue.deadline is not None and issue.category.code == "0302"
    # Routed and dated before the INSERT: the row was written once.
    assert issue.version == 1
    events = session.execute(select(IssueEvent.action).where(
        IssueEvent.issue_id == issue.id)).scalars().all()
    assert events == ["report"]


def _decoded(payload):
    return json.loads(gzip.decompress(payload.gzipped))


def _reference_markers(session, user, filters):
    """The markers body built the plain way (ORM rows, json.dumps): what the fast one must equal."""
    import hashlib

    from app.models import OPEN_STATUSES, STATUS_LABELS, Category, Issue
    from app.services.core import access
    from app.services.grids.map_layers import MAX_POINTS, Payload

    stmt = (select(Issue.id, Issue.lon, Issue.lat, Issue.status, Category.name,
                   Issue.description, Issue.address)
            .outerjoin(Category, Category.id == Issue.category_id)
            .where(Issue.lon.is_not(None)))
    if not filters.status:
        stmt = stmt.where(Issue.status.in_(OPEN_STATUSES))
    stmt = filters.apply(access.scope_issues(stmt, user)).order_by(Issue.id.desc()).limit(
        MAX_POINTS)
    features = [
        {"type": "Feature", "geometry": {"type": "Point",
                                         "coordinates": [round(lon, 6), round(lat, 6)]},
         "properties": {"id": i, "s": status, "sl": STATUS_LABELS.get(status, status),
                        "c": cat or "未分类", "d": (desc or "")[:60], "a": addr or ""}}
        for i, lon, lat, status, cat, desc, addr in session.execute(stmt).all()
    ]
    raw = json.dumps({"type": "FeatureCollection", "features": features,
                      "truncated": len(features) >= MAX_POINTS},
                     ensure_ascii=False, separators=(",", ":")).encode()
    return Payload(gzip.compress(raw, 6, mtime=0), hashlib.sha1(raw).hexdigest()[:20])


def test_markers_payload_is_the_same_body_and_follows_every_change(client, auth, factory, session):
    from app.services.grids import map_layers
    from app.services.grids.map_data import IssueFilters
    from app.services.issues.intake import transition

    town = factory.town()
    inspector = town["users"]["inspector"]
    first = factory.issue(inspector, lon=west_point(0)[0], lat=west_point(0)[1],
                          description="西区问题", address="人民路")
    factory.issue(inspector, lon=east_point(1)[0], lat=east_point(1)[1], description="东区问题")
    for name in ("admin", "east"):
        user = town["users"][name]
        for filters in (IssueFilters(), IssueFilters(status="closed")):
            new = map_layers.issues_payload(session, user, filters)
            old = _reference_markers(session, user, filters)
            assert _decoded(new) == _decoded(old)
            assert new.etag == old.etag  # byte for byte the same JSON text

    auth.login("admin")
    shown = client.get("/map/issues.geojson").get_json()
    assert {f["properties"]["d"] for f in shown["features"]} == {"西区问题", "东区问题"}
    # A changed problem is re-encoded, not served from the per-feature cache.
    first.description = "西区问题 (已核实)"
    transition(session, town["users"]["admin"], first.id, "dispatch")
    session.commit()
    shown = client.get("/map/issues.geojson").get_json()
    props = {f["properties"]["id"]: f["properties"] for f in shown["features"]}
    assert props[first.id]["d"] == "西区问题 (已核实)" and props[first.id]["s"] == "dispatched"
    transition(session, town["users"]["admin"], first.id, "reject", note="不属实")
    session.commit()
    shown = client.get("/map/issues.geojson").get_json()
    assert [f["properties"]["d"] for f in shown["features"]] == ["东区问题"]
