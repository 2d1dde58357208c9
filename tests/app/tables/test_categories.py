"""Categories as a county writes them (issue #11): matching, 待分类 intake, the queue page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models import Category, CategoryAlias, Issue, IssueEvent
from app.services.core.errors import TableRowsError
from app.services.issues.intake import IssueInput, create_issue
from app.services.tables import categories
from app.services.tables.category_match import (
    CategoryMatcher,
    match_category,
    pending_deadline_days,
    set_pending_deadline_days,
)
from app.services.tables.workdays import seed_calendar
from tests.factories import west_point

LAYERS = Path(__file__).resolve().parents[3] / "layers"


@pytest.fixture()
def standard(session):
    """The national table and the standard synonyms, as init-db loads them."""
    categories.seed_categories(session, LAYERS / "categories.csv")
    categories.seed_aliases(session, LAYERS / "category_aliases.csv")
    session.commit()
    return CategoryMatcher(session)


@pytest.mark.parametrize(("text", "code", "method"), [
    ("0302", "0302", "code"),
    (" ０３０２ ", "0302", "code"),          # full-width digits from a Chinese IME
    ("302", "0302", "code"),                 # Excel dropped the leading zero
    ("0302 背街小巷", "0302", "code"),
    ("背街小巷", "0302", "name"),
    ("小餐饮“三小”", "0601", "name"),
    ("市容环境卫生-背街小巷", "0302", "path"),
    ("市容环境卫生—占道经营", "0304", "path"),
    ("食品和生活饮用水安全/食品摊贩", "0602", "path"),
    ("市容环境卫生", "03", "level1"),
    ("病媒生物预防控制", "08", "level1"),
    ("环境卫生", "03", "alias"),
    ("病媒防制", "08", "alias"),
    ("食品安全", "06", "alias"),
    ("四害", "08", "alias"),
    ("灭鼠", "0801", "alias"),
    ("牛皮癣", "0303", "alias"),
    ("三小", "0601", "alias"),
    ("环境卫生类", "03", "alias"),
    ("背街小港", "0302", "fuzzy"),           # a typo
    ("市容环境", "03", "alias"),
    ("市容环卫生", "03", "fuzzy"),
    ("公厕卫生差", "0305", "fuzzy"),
    ("市容环境卫生-背街小港", "0302", "path"),
    ("食品", "06", "fuzzy"),                 # 食品摊贩 or 食品生产经营: the branch is known
    ("控烟不到位", "0202", "fuzzy"),
])
def test_categories_are_read_as_written(standard, text, code, method):
    found = standard.match(text)
    assert found.category is not None, text
    assert (found.category.code, found.method) == (code, method)
    assert 0.75 <= found.score <= 1.0


@pytest.mark.parametrize("text", ["其他", "其它", "xyz", "", None, "   ", "卫生", "其他问题",
                                  "其他-其他", "环境"])
def test_texts_that_say_nothing_are_pending(standard, text):
    found = standard.match(text)
    assert found.category is None
    assert (found.method, found.score) == ("none", 0.0)


def test_fuzzy_threshold_is_not_loose(session):
    """Without the synonym table, the fuzzy step alone still refuses a two-of-four guess."""
    categories.seed_categories(session, LAYERS / "categories.csv")
    matcher = CategoryMatcher(session)
    assert matcher.match("市容环境").category.code == "03"
    assert matcher.match("背街小港").category.code == "0302"
    assert matcher.match("背街大港").category is None
    assert matcher.match("其他").category is None


def test_an_office_synonym_for_other_applies(standard, session):
    assert match_category(session, "其他").category is None
    categories.save_alias(session, None, "其他", "0302")
    session.commit()
    found = match_category(session, "其他")
    assert (found.category.code, found.method) == ("0302", "alias")


def test_seed_file_has_enough_sensible_synonyms():
    import csv

    with open(LAYERS / "categories.csv", encoding="utf-8") as handle:
        codes = {r["code"] for r in csv.DictReader(handle)}
    with open(LAYERS / "category_aliases.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 40
    assert {r["code"] for r in rows} <= codes
    words = {r["alias"] for r in rows}
    for word in ("环境卫生", "卫生死角", "病媒防制", "四害", "灭鼠", "蚊蝇", "食品安全", "三小",
                 "小餐饮", "控烟", "吸烟", "乱堆乱放", "牛皮癣", "流动摊贩", "垃圾", "暴露垃圾",
                 "健康教育", "宣传栏", "工地", "扬尘", "污水", "黑臭水体"):
        assert word in words
    assert "其他" not in words


def test_the_standard_synonyms_all_resolve_to_their_own_code(standard, session):
    for row in session.execute(select(CategoryAlias)).scalars():
        found = standard.match(row.alias)
        assert found.category is not None and found.category.code == row.category_code, row.alias


# ---------------------------------------------------------------------- intake: 待分类


@pytest.fixture()
def town(factory, session):
    world = factory.town()
    seed_calendar(session)
    categories.seed_categories(session, LAYERS / "categories.csv")
    categories.seed_aliases(session, LAYERS / "category_aliases.csv")
    session.commit()
    return world


def _report(session, user, category, *, deadline=None, found=datetime(2026, 11, 2, 9, 0)):
    """A problem found on Monday 2 November 2026, as an imported list brings it (no user:
    nobody back-dates through a form)."""
    lon, lat = west_point(0)
    issue = create_issue(session, None, IssueInput(
        description="路边有积存垃圾", category=category, lon=lon, lat=lat, found_at=found,
        deadline=deadline))
    session.commit()
    return issue


def test_an_unknown_category_is_kept_as_pending_with_the_default_deadline(town, session):
    inspector = town["users"]["inspector"]
    issue = _report(session, inspector, "其他")
    assert issue.id is not None
    assert (issue.category_id, issue.category_pending, issue.category_text) == (None, True, "其他")
    # 2026-11-02 is a Monday: five working days later is Monday 9 November.
    assert issue.deadline.isoformat() == "2026-11-09"
    event = session.execute(select(IssueEvent).where(IssueEvent.issue_id == issue.id)).scalar()
    assert event.data["category"] == {"method": "none", "score": 0.0, "deadline_default": True}


def test_a_blank_category_is_pending_too_and_the_list_deadline_is_kept(town, session):
    from datetime import date

    issue = _report(session, town["users"]["inspector"], "", deadline=date(2026, 11, 20))
    assert issue.category_pending and issue.category_text is None
    assert issue.deadline == date(2026, 11, 20)


def test_the_default_deadline_is_a_setting(town, session):
    set_pending_deadline_days(session, town["users"]["admin"], "8")
    session.commit()
    assert pending_deadline_days(session) == 8
    issue = _report(session, town["users"]["inspector"], "xyz")
    assert issue.deadline.isoformat() == "2026-11-12"
    with pytest.raises(categories.ValidationError, match="'abc' 不是整数"):
        set_pending_deadline_days(session, None, "abc")


def test_every_new_issue_keeps_the_category_as_written(town, session):
    issue = _report(session, town["users"]["inspector"], "四害")
    assert (issue.category.code, issue.category_pending, issue.category_text) == (
        "08", False, "四害")
    assert issue.deadline.isoformat() == "2026-11-09"  # 08's own five days


# ---------------------------------------------------------------------- the 待分类 queue


def test_the_queue_classifies_ticked_rows_in_bulk(town, session, client, auth):
    from datetime import date

    inspector = town["users"]["inspector"]
    default = _report(session, inspector, "其他")
    listed = _report(session, inspector, "", deadline=date(2026, 11, 30))
    other = _report(session, inspector, "xyz")
    auth.login("admin")
    page = client.get("/issues/pending/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"#{default.id}" in html and "其他" in html and f"#{other.id}" in html
    response = client.post("/issues/pending/", data={
        "issue_id": [str(default.id), str(listed.id)], "category": "0305"})
    assert response.status_code == 302
    session.expire_all()
    default, listed, other = (session.get(Issue, i) for i in (default.id, listed.id, other.id))
    assert default.category.code == "0305" and not default.category_pending
    assert default.category_text == "其他"  # what the list wrote stays on record
    # The default deadline follows the category (0305 公厕: 3 working days) ...
    assert default.deadline.isoformat() == "2026-11-05"
    # ... the list's own deadline is left as it was.
    assert listed.deadline == date(2026, 11, 30)
    assert other.category_pending
    event = session.execute(select(IssueEvent).where(
        IssueEvent.issue_id == default.id, IssueEvent.action == "classify")).scalar_one()
    assert event.data["category"] == "0305"
    assert event.data["deadline"] == {"from": "2026-11-09", "to": "2026-11-05"}
    assert f"#{default.id}" not in client.get("/issues/pending/").get_data(as_text=True)


def test_the_queue_refuses_a_missing_choice_with_a_message(town, session, client, auth):
    issue = _report(session, town["users"]["inspector"], "其他")
    auth.login("admin")
    response = client.post("/issues/pending/", data={"issue_id": str(issue.id), "category": ""})
    assert response.status_code == 400
    assert "请选择问题类别" in response.get_data(as_text=True)
    response = client.post("/issues/pending/", data={"category": "0302"})
    assert response.status_code == 400
    assert "请先勾选" in response.get_data(as_text=True)
    response = client.post("/issues/pending/", data={"issue_id": str(issue.id), "category": "99"})
    assert "问题类别 &#39;99&#39; 不存在" in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(Issue, issue.id).category_pending


def test_the_list_flags_pending_and_the_export_has_a_column(town, session, client, auth):
    import io

    from openpyxl import load_workbook

    pending = _report(session, town["users"]["inspector"], "其他")
    _report(session, town["users"]["inspector"], "背街小巷")
    auth.login("admin")
    html = client.get("/issues/").get_data(as_text=True)
    assert html.count('class="tag warn-tag" title="原文: 其他">待分类</span>') == 1
    data = client.get("/issues/export.xlsx").data
    ws = load_workbook(io.BytesIO(data)).active
    header = [c.value for c in ws[1]]
    col = header.index("待分类")
    text_col = header.index("类别原文")
    rows = {r[0].value: r for r in ws.iter_rows(min_row=2)}
    assert rows[pending.id][col].value == "是"
    assert rows[pending.id][text_col].value == "其他"
    assert [r[col].value for i, r in rows.items() if i != pending.id] == [None]


def test_the_nav_shows_the_queue_to_admins_only(town, client, auth):
    auth.login("admin")
    assert "待分类</a>" in client.get("/issues/").get_data(as_text=True)
    client.get("/logout")
    auth.login("inspector")
    assert "待分类</a>" not in client.get("/issues/").get_data(as_text=True)


# ---------------------------------------------------------------------- the tables page


def test_an_office_edits_a_deadline_on_the_tables_page(town, session, client, auth):
    auth.login("admin")
    assert "背街小巷" in client.get("/admin/tables/categories").get_data(as_text=True)
    form = client.get("/admin/tables/categories?edit=0302").get_data(as_text=True)
    assert 'action="/admin/tables/categories/0302"' in form and 'value="5"' in form
    response = client.post("/admin/tables/categories/0302", data={
        "name": "背街小巷", "deadline_days": "2", "points": "1.5", "functional_unit": "东区单位"})
    assert response.status_code == 302
    session.expire_all()
    cat = session.execute(select(Category).where(Category.code == "0302")).scalar_one()
    assert (cat.deadline_days, cat.points, cat.functional_unit.name) == (2, 1.5, "东区单位")
    bad = client.post("/admin/tables/categories/0302", data={
        "name": "背街小巷", "deadline_days": "abc", "points": "1"})
    assert bad.status_code == 400
    assert "时限: &#39;abc&#39; 不是数字" in bad.get_data(as_text=True)


def test_an_uploaded_category_table_names_its_bad_rows(town, session, client, auth):
    import io

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["类别编码", "类别名称", "整改时限", "扣分", "职能部门"])
    ws.append(["0302", "背街小巷", 4, 1, ""])
    ws.append(["0320", "新增类别", 6, 1, "不存在的局"])
    ws.append(["0321", "又一类别", "abc", 1, ""])
    buf = io.BytesIO()
    wb.save(buf)
    auth.login("admin")
    count = session.execute(select(func.count(Category.id))).scalar()
    response = client.post("/admin/tables/categories/import", data={
        "file": (io.BytesIO(buf.getvalue()), "类别.xlsx")}, content_type="multipart/form-data")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "第 3 行 职能部门: 「不存在的局」不是已有的责任单位" in html
    assert "第 4 行 时限: &#39;abc&#39; 不是数字" in html
    session.expire_all()
    assert session.execute(select(func.count(Category.id))).scalar() == count
    ws.delete_rows(3, 2)
    ws.append(["0320", "新增类别", 6, 1, "西区单位"])
    buf = io.BytesIO()
    wb.save(buf)
    response = client.post("/admin/tables/categories/import", data={
        "file": (io.BytesIO(buf.getvalue()), "类别.xlsx")}, content_type="multipart/form-data")
    assert response.status_code == 302
    session.expire_all()
    new = session.execute(select(Category).where(Category.code == "0320")).scalar_one()
    assert (new.parent_code, new.deadline_days, new.functional_unit.name) == ("03", 6, "西区单位")


def test_replacing_the_table_keeps_categories_in_use(town, session):
    _report(session, town["users"]["inspector"], "0302")
    table = "编码,名称\n03,市容环境卫生\n0301,主次干道\n".encode()
    with pytest.raises(TableRowsError, match="0302 背街小巷 有 1 条问题使用"):
        categories.import_categories(session, None, table, "类别.csv", replace=True)


def test_synonyms_are_edited_on_the_tables_page_and_apply_at_once(town, session, client, auth):
    auth.login("admin")
    assert "牛皮癣" in client.get("/admin/tables/category-aliases").get_data(as_text=True)
    form = client.get("/admin/tables/category-aliases?edit=四害").get_data(as_text=True)
    assert 'name="old_alias" value="四害"' in form
    response = client.post("/admin/tables/category-aliases",
                           data={"alias": "门前三包", "category": "0302"})
    assert response.status_code == 302
    assert match_category(session, "门前三包").category.code == "0302"
    clash = client.post("/admin/tables/category-aliases", data={"alias": "四害", "category": "0302"})
    assert clash.status_code == 409
    wrong = client.post("/admin/tables/category-aliases", data={"alias": "x1", "category": "77"})
    assert wrong.status_code == 400
    assert "不是已有的类别编码或名称" in wrong.get_data(as_text=True)
    response = client.post("/admin/tables/category-aliases/delete", data={"alias": "门前三包"})
    assert response.status_code == 302
    assert match_category(session, "门前三包").category is None
    upload = client.post("/admin/tables/category-aliases/import", data={
        "file": (io_bytes("别名,类别编码\n脏乱差,03\n卫生死角,0302\n坏行,88\n"), "别名.csv")},
        content_type="multipart/form-data")
    assert upload.status_code == 400
    assert "第 4 行 类别: &#39;88&#39;" in upload.get_data(as_text=True)
    upload = client.post("/admin/tables/category-aliases/import", data={
        "file": (io_bytes("别名,类别编码\n脏乱差,03\n卫生死角,0302\n"), "别名.csv")},
        content_type="multipart/form-data")
    assert upload.status_code == 302
    assert match_category(session, "脏乱差").category.code == "03"
    assert match_category(session, "卫生死角").category.code == "0302"


def io_bytes(text: str):
    import io

    return io.BytesIO(text.encode("utf-8"))
