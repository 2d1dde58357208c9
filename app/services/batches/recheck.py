"""反馈批次, re-checked: apply the prefecture's 复核 of a returned list to its problems.

Rows are matched by 序号 and fall back to the description; all rows or none, every error
naming its row, and a file already imported for the batch is refused.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata

from openpyxl import load_workbook
from sqlalchemy import select

from app.models import Issue, User, now_local
from app.services.batches.queries import get_batch, show_time
from app.services.core import access
from app.services.core.errors import ConflictError, ValidationError
from app.services.core.tabular import read_named_columns
from app.services.core.text import clean_text
from app.services.issues.intake import add_event, transition

RECHECK_PASS = {"通过", "合格", "已通过", "复核通过", "是", "pass", "passed"}
RECHECK_FAIL = {"未通过", "不通过", "不合格", "复核未通过", "否", "fail", "failed"}
RECHECK_COLUMNS = {
    "seq": {"序号", "编号", "no", "no."},
    "description": {"问题描述", "存在问题", "问题", "问题内容"},
    "result": {"复核", "复核结果", "复核情况", "复核结论", "复核意见结果"},
    "note": {"复核意见", "复核说明", "意见", "备注"},
}


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
