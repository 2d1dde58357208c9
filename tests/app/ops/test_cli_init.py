"""A new database is ready to use (issue #11): init-db, seed-demo, import-categories."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from app.models import (
    CalendarYear,
    Category,
    CategoryAlias,
    Issue,
    Setting,
    Unit,
    WorkdayOverride,
)
from app.services.tables import categories, category_match
from tests.factories import app_config, make_database

LAYERS = Path(__file__).resolve().parents[3] / "layers"


@pytest.fixture()
def blank(tmp_path):
    """An app on a database with no tables at all."""
    url, drop = make_database("blank", tmp_path)
    from app import create_app

    target = create_app(app_config(url, tmp_path))
    with target.app_context():
        yield target
        from app.extensions import db

        db.session.remove()
        drop()


def _db():
    from app.extensions import db

    return db.session


def _snapshot() -> dict:
    session = _db()
    return {
        "categories": sorted(
            (c.code, c.name, c.level, c.parent_code, c.deadline_days, c.points,
             c.functional_unit_id) for c in session.execute(select(Category)).scalars()),
        "aliases": sorted((a.alias, a.category_code, a.edited)
                          for a in session.execute(select(CategoryAlias)).scalars()),
        "days": session.execute(select(func.count()).select_from(WorkdayOverride)).scalar(),
        "years": session.execute(select(func.count()).select_from(CalendarYear)).scalar(),
        "settings": sorted((s.key, str(s.value)) for s in session.execute(select(Setting)).scalars()),
    }


def _csv_rows(name: str) -> list[dict]:
    with open(LAYERS / name, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_init_db_makes_a_blank_database_ready_and_a_second_run_changes_nothing(blank):
    runner = blank.test_cli_runner()
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "数据库已就绪" in result.output
    session = _db()
    assert session.execute(select(func.count(Category.id))).scalar() == len(
        _csv_rows("categories.csv"))
    assert session.execute(select(func.count(CategoryAlias.id))).scalar() == len(
        _csv_rows("category_aliases.csv"))
    years = set(session.execute(select(CalendarYear.year)).scalars())
    assert {2025, 2026} <= years
    assert category_match.pending_deadline_days(session) == 5
    assert session.get(Setting, category_match.PENDING_DAYS_KEY).value == {"days": 5}
    first = _snapshot()
    again = runner.invoke(args=["init-db"])
    assert again.exit_code == 0, again.output
    assert "新增类别 0 个, 类别别名 0 个, 节假日年份 0 个, 默认设置 0 项" in again.output
    session.expire_all()
    assert _snapshot() == first


def test_init_db_never_overwrites_an_office_edit(blank):
    runner = blank.test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    session = _db()
    categories.update_category(session, None, "0302", name="背街小巷", deadline_days="2",
                               points="1.0")
    categories.save_alias(session, None, "四害", "0801", old_alias="四害")  # re-pointed
    categories.delete_alias(session, None, "牛皮癣")          # removed by the office
    session.commit()
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    session.expire_all()
    cat = session.execute(select(Category).where(Category.code == "0302")).scalar_one()
    assert cat.deadline_days == 2
    alias = session.execute(select(CategoryAlias).where(CategoryAlias.alias == "四害")).scalar()
    assert (alias.category_code, alias.edited) == ("0801", True)
    assert session.execute(
        select(CategoryAlias).where(CategoryAlias.alias == "牛皮癣")).scalar() is None


def test_functional_units_arrive_when_the_units_do(blank):
    """init-db on a new database knows no units; once they exist, init-db links them."""
    runner = blank.test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    session = _db()
    market = session.execute(select(Category).where(Category.code == "0501")).scalar_one()
    assert market.functional_unit_id is None
    session.add(Unit(name="县市场监督管理局", kind="department"))
    session.add(Unit(name="县卫生健康局", kind="department"))
    session.commit()
    # The office decides 控烟 (0202, 县卫生健康局 in the file) has no functional unit.
    categories.update_category(session, None, "0202", name="控烟", deadline_days="5",
                               points="1.0", functional_unit="")
    session.commit()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    session.expire_all()
    codes = {c.code: c for c in session.execute(select(Category)).scalars()}
    assert codes["0501"].functional_unit.name == "县市场监督管理局"
    assert codes["0201"].functional_unit.name == "县卫生健康局"
    assert codes["0202"].functional_unit is None


def test_schema_only_leaves_the_tables_empty_for_a_restore(blank):
    result = blank.test_cli_runner().invoke(args=["init-db", "--schema-only"])
    assert result.exit_code == 0, result.output
    assert _db().execute(select(func.count(Category.id))).scalar() == 0


def test_a_workbook_written_the_prefecture_way_imports_after_init_db(blank, tmp_path):
    runner = blank.test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    sheet = tmp_path / "州级反馈.csv"
    sheet.write_text(
        "序号,问题描述,问题地点,问题类别,整改时限\n"
        "1,路边有暴露垃圾,文化路,环境卫生,\n"
        "2,餐馆后厨发现鼠迹,新华街,病媒防制,\n"
        "3,小餐饮无证经营,团结路,食品安全,3个工作日\n"
        "4,宣传栏破损,广场,其他,\n"
        "5,墙面有小广告,学府路,,\n"
        "6,巷道积存垃圾,北门巷,市容环境卫生-背街小港,\n",
        encoding="utf-8",
    )
    result = runner.invoke(args=["import-issues", str(sheet), "--per-row"])
    assert result.exit_code == 0, result.output
    assert "rejected=0" in result.output
    session = _db()
    issues = {i.description: i for i in session.execute(select(Issue)).scalars()}
    assert len(issues) == 6
    assert issues["路边有暴露垃圾"].category.code == "03"
    assert issues["餐馆后厨发现鼠迹"].category.code == "08"
    assert issues["小餐饮无证经营"].category.code == "06"
    assert issues["巷道积存垃圾"].category.code == "0302"
    for text in ("宣传栏破损", "墙面有小广告"):
        assert issues[text].category_pending and issues[text].category_id is None
    assert issues["宣传栏破损"].category_text == "其他"
    assert issues["路边有暴露垃圾"].category_text == "环境卫生"
    assert not issues["路边有暴露垃圾"].category_pending


def test_import_categories_adds_updates_and_names_bad_rows(blank, tmp_path):
    runner = blank.test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    good = tmp_path / "类别.csv"
    good.write_text("编码,名称,时限,扣分\n0302,背街小巷,4,1.5\n0314,城郊结合部,7,1\n",
                    encoding="utf-8")
    result = runner.invoke(args=["import-categories", str(good)])
    assert result.exit_code == 0, result.output
    assert "新增 1 个, 修改 1 个" in result.output
    session = _db()
    session.expire_all()
    new = session.execute(select(Category).where(Category.code == "0314")).scalar_one()
    assert (new.name, new.level, new.parent_code, new.deadline_days) == ("城郊结合部", 2, "03", 7)
    bad = tmp_path / "坏类别.csv"
    bad.write_text("编码,名称,时限\n0302,背街小巷,3\n0315,新类别,3\n0316,另一类别,3\n"
                   "0317,再一个,abc\n", encoding="utf-8")
    before = _snapshot()
    result = runner.invoke(args=["import-categories", str(bad)])
    assert result.exit_code == 1
    assert "第 5 行 时限: 'abc' 不是数字" in result.output
    session.expire_all()
    assert _snapshot() == before  # all rows or none


def test_seed_demo_creates_the_schema_of_an_empty_database(blank):
    assert inspect(_db().get_bind()).get_table_names() == []
    result = blank.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "演示县城已载入" in result.output
    session = _db()
    assert session.execute(select(func.count(Issue.id))).scalar() > 0
    market = session.execute(select(Category).where(Category.code == "0501")).scalar_one()
    assert market.functional_unit is not None
    assert session.execute(select(func.count(CategoryAlias.id))).scalar() >= 40
