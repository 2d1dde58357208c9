"""反馈批次 after import: progress, one-step dispatch, routing conflicts and the 复核.

A batch is one list sent back by an inspection. Everything here reads through the access
service: admins, inspectors and leaders see whole batches, a unit head only their own
share (their rows and counts; a batch with none of theirs does not exist for them).
Dispatch goes through the one workflow (``issues.transition``), so each dispatched problem
gets its event and only admins may do it.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from app.models import (
    OPEN_STATUSES,
    STATUS_LABELS,
    STATUSES,
    Batch,
    Cell,
    Issue,
    Unit,
    User,
    now_local,
    today_local,
)
from app.services.core import access
from app.services.core.errors import ConflictError, NotFoundError, ValidationError
from app.services.core.text import clean_text
from app.services.issues.intake import add_event, reroute, transition

# Why a problem is not dispatched, in the order they are checked.
SKIP_REASONS = {
    "closed": "已结束 (销号/不予立案/重复)",
    "dispatched": "已派遣",
    "needs_placement": "待定位，请先定位",
    "pending_category": "待分类，请先确定类别",
    "no_unit": "没有责任单位",
    "raced": "已被另一次派遣处理 (本批次已在派遣中或已派遣)",
}
RECHECK_PASS = {"通过", "合格", "已通过", "复核通过", "是", "pass", "passed"}
RECHECK_FAIL = {"未通过", "不通过", "不合格", "复核未通过", "否", "fail", "failed"}
RECHECK_COLUMNS = {
    "seq": {"序号", "编号", "no", "no."},
    "description": {"问题描述", "存在问题", "问题", "问题内容"},
    "result": {"复核", "复核结果", "复核情况", "复核结论", "复核意见结果"},
    "note": {"复核意见", "复核说明", "意见", "备注"},
}
MAX_DISPATCH = 20_000
MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL: a larger one is simply not there


class BatchNotFoundError(NotFoundError):
    """A batch that does not exist, or holds nothing the user may see."""


# ---------------------------------------------------------------------- reading


def natural_key(seq: str | None) -> tuple:
    """Sort 序号 as the list does: "2" before "10", text after numbers."""
    text = (seq or "").strip()
    parts = re.split(r"(\d+)", text)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def check_unit_id(unit_id: int) -> None:
    """Refuse a unit id no database row can have (a 404, not a driver overflow)."""
    if not 1 <= int(unit_id) <= MAX_ID:
        msg = f"单位 {unit_id} 不存在"
        raise NotFoundError(msg)


def get_batch(session, user: User, batch_id: int) -> Batch:
    """Load a batch the user may see (a unit head only one holding their problems).

    Raises
    ------
    BatchNotFoundError
        The batch is missing, or a unit head has no problem in it (404, not 403).
    """
    access.require(user, "read")
    batch = session.get(Batch, batch_id)
    if batch is not None and access.is_unit_scoped(user):
        mine = session.execute(
            access.scope_issues(
                select(func.count()).select_from(Issue).where(Issue.batch_id == batch.id), user
            )
        ).scalar_one()
        if not mine:
            batch = None
    if batch is None:
        msg = f"反馈批次 {batch_id} 不存在"
        raise BatchNotFoundError(msg)
    return batch


def batch_issues(session, user: User, batch_id: int, *, unit_id: int | None = None) -> list[Issue]:
    """The batch's problems the user may see, in the list's own order (序号).

    Raises
    ------
    NotFoundError
        ``unit_id`` names no unit (or one a unit head may not see): 404 for every such id.
    """
    stmt = access.scope_issues(select(Issue).where(Issue.batch_id == batch_id), user)
    if unit_id:
        check_unit_id(unit_id)
        access.get_unit(session, user, int(unit_id))
        stmt = stmt.where(Issue.unit_id == unit_id)
    stmt = stmt.options(
        selectinload(Issue.unit), selectinload(Issue.category), selectinload(Issue.cell),
        selectinload(Issue.photos), selectinload(Issue.co_units),
    )
    rows = list(session.execute(stmt).scalars())
    rows.sort(key=lambda i: (natural_key(i.batch_seq), i.id))
    return rows


def closed_on_time(issue: Issue) -> bool:
    """Closed no later than its deadline (county days)."""
    return (
        issue.status == "closed" and issue.closed_at is not None
        and (issue.deadline is None or issue.closed_at.date() <= issue.deadline)
    )


def summarize(issues: list[Issue], *, today: date | None = None) -> dict:
    """Counts over a list of problems: by status, on time, overdue, by unit and category."""
    today = today or today_local()
    by_status = {s: 0 for s in STATUSES}
    by_unit: dict[str, dict] = {}
    by_category: dict[str, dict] = {}
    overdue = on_time = 0
    for issue in issues:
        by_status[issue.status] = by_status.get(issue.status, 0) + 1
        late = issue.is_overdue(today)
        overdue += late
        on_time += closed_on_time(issue)
        unit = issue.unit.name if issue.unit else "未分配"
        if issue.category is not None:
            category = issue.category.label
        else:
            category = "待分类" if issue.category_pending else "未分类"
        for table, key in ((by_unit, unit), (by_category, category)):
            row = table.setdefault(key, {"name": key, "total": 0, "open": 0, "closed": 0,
                                         "overdue": 0})
            row["total"] += 1
            row["open"] += issue.status in OPEN_STATUSES
            row["closed"] += issue.status == "closed"
            row["overdue"] += late
    return {
        "total": len(issues),
        "by_status": by_status,
        "recheck": recheck_counts(issues),
        "closed_on_time": on_time,
        "overdue": overdue,
        "by_unit": sorted(by_unit.values(), key=lambda r: (-r["total"], r["name"])),
        "by_category": sorted(by_category.values(), key=lambda r: (-r["total"], r["name"])),
    }


def recheck_counts(issues: list[Issue]) -> dict:
    """复核 results over these problems (their own ``recheck_result``, every upload)."""
    passed = sum(i.recheck_result == "passed" for i in issues)
    failed = sum(i.recheck_result == "failed" for i in issues)
    return {"rows": passed + failed, "passed": passed, "failed": failed}


def show_time(value: str | None) -> str:
    """An ISO timestamp as the pages show it: ``2026-12-02 06:20``."""
    text = str(value or "")
    return text[:16].replace("T", " ")


def recheck_view(batch: Batch, user: User, counts: dict) -> dict | None:
    """The 复核 block for this reader: counts over their share; uploads only for whole-batch readers.

    A unit head gets only the counts of their own problems; admins, inspectors and
    leaders also get the uploads (time, file, uploader, counts), times as ``YYYY-MM-DD HH:MM``.
    """
    mine = dict(counts["recheck"])
    stored = batch.recheck or {}
    if access.is_unit_scoped(user):
        return mine if mine["rows"] else None
    if not mine["rows"] and not stored:
        return None
    history = [
        {"at": show_time(h.get("at")), "filename": h.get("filename"), "by": h.get("by"),
         "rows": h.get("rows"), "passed": h.get("passed", 0), "failed": h.get("failed", 0),
         "warnings": len(h.get("warnings") or ())}
        for h in stored.get("history", [])
    ]
    return {**mine, "history": history, "last": history[-1] if history else None}


def batch_to_dict(batch: Batch, counts: dict) -> dict:
    """A batch's headline as the API shows it."""
    return {
        "id": batch.id,
        "name": batch.name,
        "source": batch.source,
        "received_on": batch.received_on.isoformat() if batch.received_on else None,
        "total": counts["total"],
        "by_status": counts["by_status"],
        "overdue": counts["overdue"],
        "closed_on_time": counts["closed_on_time"],
    }


def list_batches(session, user: User, *, today: date | None = None) -> list[dict]:
    """Every batch the user may see with its counts (a unit head: their share only)."""
    access.require(user, "read")
    stmt = select(Batch).order_by(Batch.id.desc())
    if access.is_unit_scoped(user):
        mine = access.scope_issues(select(Issue.batch_id).where(Issue.batch_id.is_not(None)), user)
        stmt = stmt.where(Batch.id.in_(mine))
    out = []
    for batch in session.execute(stmt).scalars():
        issues = batch_issues(session, user, batch.id)
        out.append(batch_to_dict(batch, summarize(issues, today=today)))
    return out


def conflicts_of(issues: list[Issue]) -> list[Issue]:
    """Open problems whose list named one unit while the rules would choose another."""
    return [i for i in issues if i.routing_conflict and i.is_open]


def batch_progress(session, user: User, batch_id: int, *, unit_id: int | None = None,
                   today: date | None = None) -> dict:
    """Everything the batch page shows, over the user's share of the batch."""
    batch = get_batch(session, user, batch_id)
    issues = batch_issues(session, user, batch.id, unit_id=unit_id)
    counts = summarize(issues, today=today)
    conflicts = conflicts_of(issues) if access.may(user, "reroute") else []
    return {
        "batch": batch,
        "issues": issues,
        "counts": counts,
        "conflicts": conflicts,
        "recheck": recheck_view(batch, user, counts),
        "status_labels": STATUS_LABELS,
    }


# ---------------------------------------------------------------------- dispatch


@dataclass
class DispatchResult:
    """What one dispatch did: problems per unit and those skipped with the reason."""

    per_unit: dict[str, int] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    @property
    def dispatched(self) -> int:
        return sum(self.per_unit.values())

    def to_dict(self) -> dict:
        return {"dispatched": self.dispatched, "per_unit": dict(self.per_unit),
                "skipped": list(self.skipped)}


def skip_reason(issue: Issue) -> str | None:
    """Why this problem cannot be dispatched now (a key of SKIP_REASONS), or None."""
    if not issue.is_open:
        return "closed"
    if issue.status != "reported":
        return "dispatched"
    if issue.needs_placement and issue.unit_id is None:
        return "needs_placement"
    if issue.category_pending:
        return "pending_category"
    if issue.unit_id is None:
        return "no_unit"
    return None


def _parse_ids(issue_ids) -> list[int]:
    ids = []
    for raw in issue_ids or ():
        text = str(raw).strip().lstrip("#")
        if not text.isdigit() or len(text) > 12 or not 1 <= int(text) <= MAX_ID:
            msg = f"问题编号 {clean_text(str(raw))[:40]!r} 无效"
            raise ValidationError(msg)
        ids.append(int(text))
    return sorted(set(ids))


def _load(session, user: User, issue_ids) -> list[Issue]:
    ids = _parse_ids(issue_ids)
    if len(ids) > MAX_DISPATCH:
        msg = f"一次最多派遣 {MAX_DISPATCH} 个问题 (选择了 {len(ids)} 个)"
        raise ValidationError(msg)
    rows = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        stmt = access.scope_issues(select(Issue).where(Issue.id.in_(chunk)), user).options(
            selectinload(Issue.unit))
        rows.extend(session.execute(stmt).scalars())
    found = {i.id for i in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        msg = f"问题 {missing[0]} 不存在"
        raise NotFoundError(msg)
    rows.sort(key=lambda i: (natural_key(i.batch_seq), i.id))
    return rows


def preview_issues(session, user: User, issue_ids) -> DispatchResult:
    """How many of these problems would go to which unit, and which are skipped and why."""
    access.require(user, "dispatch")
    result = DispatchResult()
    for issue in _load(session, user, issue_ids):
        reason = skip_reason(issue)
        if reason:
            result.skipped.append({"id": issue.id, "seq": issue.batch_seq,
                                   "reason": SKIP_REASONS[reason], "code": reason})
            continue
        name = issue.unit.name
        result.per_unit[name] = result.per_unit.get(name, 0) + 1
        result.ids.append(issue.id)
    return result


def _begin_write(session) -> None:
    """On SQLite, open the write transaction now (``BEGIN IMMEDIATE``) unless one is open.

    pysqlite starts a transaction only before a data change, so a SAVEPOINT issued first
    would itself start one and its RELEASE would commit: each problem's savepoint would
    commit on its own. Taking the write lock up front also makes a second, simultaneous
    dispatch wait for the first and then read its result (every problem already
    dispatched). PostgreSQL needs nothing: its SAVEPOINTs nest in the open transaction.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.dbapi_connection
    if not raw.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def dispatch_issues(session, user: User, issue_ids, *, note: str | None = None) -> DispatchResult:
    """Dispatch every dispatchable problem of a selection through the workflow (admins).

    Idempotent: problems already dispatched are skipped, so a second call dispatches
    nothing new. A problem another request dispatched meanwhile (a double click: its
    version moved on, or its status did) is skipped with reason ``raced``, never a 409.
    """
    _begin_write(session)
    preview = preview_issues(session, user, issue_ids)
    note = clean_text(note or "").strip() or "批量派遣"
    done = DispatchResult(skipped=list(preview.skipped))
    for issue_id in preview.ids:
        issue = session.get(Issue, issue_id)
        name, seq = issue.unit.name, issue.batch_seq
        try:
            with session.begin_nested():
                transition(session, user, issue_id, "dispatch", note=note)
        except (StaleDataError, ConflictError):
            session.expire_all()
            done.skipped.append({"id": issue_id, "seq": seq, "reason": SKIP_REASONS["raced"],
                                 "code": "raced"})
            continue
        done.per_unit[name] = done.per_unit.get(name, 0) + 1
        done.ids.append(issue_id)
    session.flush()
    return done


def batch_issue_ids(session, user: User, batch_id: int) -> list[int]:
    get_batch(session, user, batch_id)
    stmt = access.scope_issues(select(Issue.id).where(Issue.batch_id == batch_id), user)
    return list(session.execute(stmt).scalars())


def preview_batch(session, user: User, batch_id: int) -> DispatchResult:
    """The dispatch preview of a whole batch."""
    access.require(user, "dispatch")
    return preview_issues(session, user, batch_issue_ids(session, user, batch_id))


def dispatch_batch(session, user: User, batch_id: int) -> DispatchResult:
    """Dispatch a whole batch in one step (admins); a second call dispatches nothing new.

    Parameters
    ----------
    session
        The SQLAlchemy session; the caller commits.
    user
        The acting user (must be allowed to dispatch).
    batch_id
        The 反馈批次.

    Returns
    -------
    DispatchResult
        ``per_unit`` counts by unit name and ``skipped`` as ``{"id", "reason"}``.
    """
    access.require(user, "dispatch")
    batch = get_batch(session, user, batch_id)
    return dispatch_issues(session, user, batch_issue_ids(session, user, batch_id),
                           note=f"批量派遣: {batch.name}")


def filtered_issue_ids(session, user: User, filters) -> list[int]:
    """Ids of the problems the list's filters select (an ``IssueFilters``), scoped."""
    stmt = filters.apply(access.scope_issues(select(Issue.id), user)).limit(MAX_DISPATCH + 1)
    return list(session.execute(stmt).scalars())


# ---------------------------------------------------------------------- routing conflicts


def rule_unit(session, issue: Issue) -> Unit | None:
    """The unit the routing rules (category's functional unit, else the cell) would choose."""
    from app.services.tables.unit_routing import decide_unit

    cell = session.get(Cell, issue.cell_id) if issue.cell_id else None
    unit_id = decide_unit(issue, cell)
    return session.get(Unit, unit_id) if unit_id else None


def settle_conflicts(session, user: User, issue_ids, choice: str, *,
                     batch_id: int | None = None) -> dict:
    """Settle routing conflicts in bulk: keep the list's unit, or follow the rules.

    ``choice`` is ``"list"`` (按清单: keep the unit, clear the flag) or ``"rule"``
    (按属地/类别: re-route to the rule's unit, ``unit_source="manual"``, event recorded).
    With ``batch_id`` only that batch's problems are touched; other ids are ignored and
    counted in ``ignored``.
    """
    access.require(user, "reroute")
    if choice not in ("list", "rule"):
        msg = f"处理方式 {clean_text(str(choice))[:20]!r} 无效 (可选: list 按清单、rule 按属地/类别)"
        raise ValidationError(msg)
    ignored = 0
    if batch_id is None:
        issues = _load(session, user, issue_ids)
    else:
        ids = _parse_ids(issue_ids)
        if len(ids) > MAX_DISPATCH:
            msg = f"一次最多处理 {MAX_DISPATCH} 个问题 (选择了 {len(ids)} 个)"
            raise ValidationError(msg)
        issues = []
        for start in range(0, len(ids), 500):
            stmt = access.scope_issues(select(Issue).where(
                Issue.id.in_(ids[start:start + 500]), Issue.batch_id == batch_id), user)
            issues.extend(session.execute(stmt).scalars())
        issues.sort(key=lambda i: (natural_key(i.batch_seq), i.id))
        ignored = len(ids) - len(issues)
        if ids and not issues:
            msg = f"勾选的 {ignored} 个问题都不属于本批次，未处理"
            raise ValidationError(msg)
    if not issues:
        msg = "请先勾选要处理的问题"
        raise ValidationError(msg)
    kept = moved = 0
    errors = []
    for issue in issues:
        conflict = issue.routing_conflict
        if not conflict:
            errors.append(f"问题 #{issue.id} 没有单位冲突")
            continue
        if choice == "list":
            add_event(session, issue, user, "settle", issue.status, issue.status,
                      note="单位冲突: 按清单", data={"choice": "list", "conflict": conflict})
            issue.routing_conflict = None
            kept += 1
            continue
        target = rule_unit(session, issue)
        if target is None:
            errors.append(f"问题 #{issue.id} 按属地/类别找不到责任单位")
            continue
        if target.id != issue.unit_id:
            reroute(session, user, issue.id, target.id, reason="单位冲突: 按属地/类别")
        else:
            add_event(session, issue, user, "settle", issue.status, issue.status,
                      note="单位冲突: 按属地/类别", data={"choice": "rule", "conflict": conflict})
        issue.unit_source = "manual"
        issue.routing_conflict = None
        moved += 1
    session.flush()
    return {"kept": kept, "moved": moved, "errors": errors, "ignored": ignored}


# ---------------------------------------------------------------------- 复核


def _norm(text) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text or ""))).strip()


def _seq(text) -> str:
    value = _norm(text)
    return value[:-2] if value.endswith(".0") and value[:-2].isdigit() else value


def recheck_value(text) -> str | None:
    """通过/合格 → passed, 未通过/不合格 → failed, else None."""
    value = _norm(text).lower()
    if value in RECHECK_PASS:
        return "passed"
    if value in RECHECK_FAIL:
        return "failed"
    return None


def _uncached_formula_rows(data: bytes, filename: str) -> list[int]:
    """Rows whose 复核 cell is a formula without a cached value (reads as empty otherwise).

    Only for .xlsx: the first sheet with a 复核 header, as ``read_named_columns`` reads it.
    """
    if not data.startswith(b"PK"):
        return []
    from openpyxl import load_workbook

    try:
        formulas = load_workbook(io.BytesIO(data), read_only=True)
        values = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # not a workbook: the importer names the problem
        return []
    names = RECHECK_COLUMNS["result"]
    for ws_f, ws_v in zip(formulas.worksheets, values.worksheets, strict=False):
        f_rows = list(ws_f.iter_rows(values_only=True))
        v_rows = list(ws_v.iter_rows(values_only=True))
        for index, row in enumerate(f_rows[:10]):
            keys = [re.sub(r"[\s*:：]", "", str(v or "")).lower() for v in row]
            col = next((c for c, k in enumerate(keys) if k in names), None)
            if col is None:
                continue
            out = []
            for number in range(index + 1, len(f_rows)):
                formula = f_rows[number][col] if col < len(f_rows[number]) else None
                value = (v_rows[number][col]
                         if number < len(v_rows) and col < len(v_rows[number]) else None)
                if isinstance(formula, str) and formula.startswith("=") and value is None:
                    out.append(number + 1)
            return out
    return []


def _imported_shas(recheck: dict | None) -> dict[str, str]:
    """sha256 → when, over every 复核 file already imported for a batch."""
    recheck = recheck or {}
    seen = {h["sha256"]: h.get("at", "") for h in recheck.get("history", []) if h.get("sha256")}
    if recheck.get("sha256"):
        seen.setdefault(recheck["sha256"], recheck.get("at", ""))
    return seen


def import_recheck(session, user: User, batch_id: int, data: bytes, filename: str) -> dict:
    """Apply the prefecture's 复核 of a returned list to the batch (admins).

    Rows are matched by 序号 (the batch's ``batch_seq``) and fall back to the description.
    With any row in error nothing is applied and every error names its row; a file already
    imported for this batch (any earlier upload) is refused, so a retry cannot count a
    rework twice. 未通过 sends back (with a rework) only 待核查 and 已销号 problems; open
    ones not yet submitted just record the result; 不予立案/重复 ones are left as they are
    and listed in ``warnings``.

    Returns
    -------
    dict
        ``applied``, ``passed``, ``failed``, ``errors`` and ``warnings``.
    """
    from app.services.imports.importer import read_named_columns

    access.require(user, "import")
    batch = get_batch(session, user, batch_id)
    if not data:
        msg = "请选择复核结果文件 (.xlsx/.xls/.csv)"
        raise ValidationError(msg)
    filename = clean_text(filename or "复核.xlsx")
    sha = hashlib.sha256(data).hexdigest()
    earlier = _imported_shas(batch.recheck).get(sha)
    if earlier is not None:
        msg = f"复核文件 {filename} 已导入过 ({show_time(earlier)})，未重复处理"
        raise ConflictError(msg)
    rows = read_named_columns(data, filename, RECHECK_COLUMNS, required={"result"},
                              label="复核 (以及 序号 或 问题描述)")
    formula_rows = set(_uncached_formula_rows(data, filename))
    if not rows and not formula_rows:
        msg = f"复核文件中没有数据行 ({filename})"
        raise ValidationError(msg)
    if rows and "seq" not in rows[0] and "description" not in rows[0]:
        msg = f"{filename}: 需要「序号」或「问题描述」列来对应问题"
        raise ValidationError(msg)
    issues = list(session.execute(select(Issue).where(Issue.batch_id == batch.id)).scalars())
    by_seq = {_seq(i.batch_seq): i for i in issues if i.batch_seq}
    by_desc: dict[str, list[Issue]] = {}
    for issue in issues:
        by_desc.setdefault(_norm(issue.description), []).append(issue)
    errors: list[str] = [
        f"第 {number} 行: 复核结果是没有计算结果的公式，无法识别 (请填写 通过 或 未通过)"
        for number in sorted(formula_rows)
    ]
    warnings: list[str] = []
    plan: list[tuple[int, Issue, str, str | None]] = []
    seen: set[int] = set()
    for row in rows:
        number = row["row"]
        if number in formula_rows:
            continue
        result = recheck_value(row.get("result"))
        if result is None:
            if not _norm(row.get("result")):
                continue  # not re-checked (yet): the row stays as it is
            errors.append(f"第 {number} 行: 复核结果 {clean_text(row['result'])[:20]!r} 无法识别"
                          "(可选: 通过、未通过、合格、不合格)")
            continue
        issue = None
        seq = _seq(row.get("seq"))
        if seq:
            issue = by_seq.get(seq)
            if issue is None:
                errors.append(f"第 {number} 行: 序号 {seq[:20]} 在本批次中不存在")
                continue
        else:
            hits = by_desc.get(_norm(row.get("description")), [])
            if len(hits) != 1:
                why = "找不到" if not hits else f"对应 {len(hits)} 个问题"
                errors.append(f"第 {number} 行: 没有序号，问题描述{why}")
                continue
            issue = hits[0]
        if issue.id in seen:
            errors.append(f"第 {number} 行: 问题 (序号 {issue.batch_seq}) 重复出现")
            continue
        seen.add(issue.id)
        if issue.status in ("rejected", "duplicate"):
            state = "已不予立案" if issue.status == "rejected" else "已标记为重复"
            warnings.append(f"第 {number} 行: 问题 #{issue.id} {state}，未处理")
            continue
        note = clean_text(row.get("note") or "").strip()[:2000] or None
        plan.append((number, issue, result, note))
    if errors:
        return {"applied": False, "passed": 0, "failed": 0, "errors": errors,
                "warnings": warnings}
    if not plan:
        msg = f"复核文件 {filename} 中没有可处理的复核结果" + (
            f": {'；'.join(warnings[:5])}" if warnings else " (复核列均为空)")
        raise ValidationError(msg)
    now = now_local()
    passed = failed = reworked = 0
    for number, issue, result, note in plan:
        reworked += _apply_recheck(session, user, issue, result, note, row=number)
        issue.recheck_result, issue.recheck_note, issue.recheck_at = result, note, now
        passed += result == "passed"
        failed += result == "failed"
    entry = {"at": now.replace(microsecond=0).isoformat(), "filename": filename,
             "sha256": sha, "by": user.username, "rows": len(plan), "passed": passed,
             "failed": failed, "reworked": reworked, "warnings": warnings[:200]}
    history = list((batch.recheck or {}).get("history", []))
    history.append(entry)
    batch.recheck = {**entry, "history": history}
    session.flush()
    return {"applied": True, "passed": passed, "failed": failed, "reworked": reworked,
            "errors": [], "warnings": warnings}


def _apply_recheck(session, user: User, issue: Issue, result: str, note: str | None, *,
                   row: int) -> int:
    """Apply one row's 复核; returns 1 when it sent the problem back with a rework."""
    label = "州级复核通过" if result == "passed" else "州级复核未通过"
    text = f"{label}" + (f": {note}" if note else "")
    data = {"result": result, "row": row}
    if result == "passed":
        if issue.status == "submitted":
            transition(session, user, issue.id, "verify_ok", note=text)
        else:
            add_event(session, issue, user, "recheck", issue.status, issue.status, note=text,
                      data=data)
        return 0
    if issue.status == "submitted":
        transition(session, user, issue.id, "verify_fail", note=text)  # counts the rework
        return 1
    if issue.status == "closed":
        issue.status = "rectifying"
        issue.closed_at = None
        issue.rework_count = (issue.rework_count or 0) + 1
        add_event(session, issue, user, "recheck", "closed", "rectifying", note=text, data=data)
        return 1
    # Not yet submitted (reported, dispatched, rectifying): nothing to send back.
    add_event(session, issue, user, "recheck", issue.status, issue.status, note=text, data=data)
    return 0


def batch_detail_dict(session, user: User, batch_id: int) -> dict:
    """A batch's progress as the API shows it (a unit head: their share only)."""
    detail = batch_progress(session, user, batch_id)
    counts = detail["counts"]
    recheck = dict(detail["recheck"] or {})
    recheck.pop("sha256", None)
    return {
        **batch_to_dict(detail["batch"], counts),
        "by_unit": counts["by_unit"],
        "by_category": counts["by_category"],
        "conflicts": [
            {"id": i.id, "seq": i.batch_seq, "unit": i.unit.name if i.unit else None,
             "conflict": dict(i.routing_conflict)}
            for i in detail["conflicts"]
        ],
        "recheck": recheck or None,
        "issues": [i.id for i in detail["issues"]],
    }
