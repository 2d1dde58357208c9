"""The assessment's rules: the scoring formula and the red/black list rule (admin settings).

Both are Settings rows (``assessment_formula``, ``assessment_lists``) over the defaults
here; saving one changes only computations from then on, never a published month.
"""

from __future__ import annotations

import json

from app.models import Setting, User
from app.services.core import access, audit
from app.services.core.errors import ValidationError

FORMULA_KEY = "assessment_formula"
LISTS_KEY = "assessment_lists"

DEFAULT_FORMULA: dict[str, float] = {
    "base": 100.0,
    "problem_weight": 1.0,
    "overdue_points": 2.0,
    "rework_points": 1.0,
    "recurrence_points": 2.0,
    "on_time_weight": 10.0,
    "floor": 0.0,
}
FORMULA_LABELS = {
    "base": "基础分",
    "problem_weight": "问题扣分系数 (× 类别分值)",
    "overdue_points": "每个超期未销号问题扣分",
    "rework_points": "每次核查退回返工扣分",
    "recurrence_points": "每个反弹问题扣分",
    "on_time_weight": "按期销号率权重 (× 未按期比例)",
    "floor": "最低分",
}
DEFAULT_LISTS: dict[str, float] = {
    "red_top": 3,
    "red_min_score": 90.0,
    "black_bottom": 3,
    "black_max_score": 100.0,
    "interview_after": 2,
    "red_min_received": 1,
}
LISTS_LABELS = {
    "red_top": "红榜名额 (前 N 名)",
    "red_min_score": "上红榜最低得分",
    "black_bottom": "黑榜名额 (后 N 名)",
    "black_max_score": "上黑榜须低于得分",
    "interview_after": "连续上黑榜几个月约谈",
    "red_min_received": "上红榜至少应有问题数 (受理或到期)",
}
_INT_LIST_KEYS = ("red_top", "black_bottom", "interview_after", "red_min_received")


def _setting(session, key: str) -> dict:
    row = session.get(Setting, key)
    return dict(row.value) if row is not None and isinstance(row.value, dict) else {}


def get_formula(session) -> dict[str, float]:
    """The scoring weights in force: the stored ones over the defaults."""
    return {
        **DEFAULT_FORMULA,
        **{k: float(v) for k, v in _setting(session, FORMULA_KEY).items() if k in DEFAULT_FORMULA},
    }


def get_lists_rule(session) -> dict:
    """The red/black list rule in force: the stored one over the defaults."""
    rule = {
        **DEFAULT_LISTS,
        **{k: v for k, v in _setting(session, LISTS_KEY).items() if k in DEFAULT_LISTS},
    }
    for key in _INT_LIST_KEYS:
        rule[key] = int(rule[key])
    return rule


def _number(
    raw, label: str, *, integer: bool = False, low: float = 0.0, high: float = 1000.0
) -> float:
    try:
        value = float(str(raw).strip())
    except (TypeError, ValueError):
        msg = f"{label}: {raw!r} 不是数字"
        raise ValidationError(msg) from None
    if value != value or not low <= value <= high:
        msg = f"{label}: {raw!r} 应在 {low:g} 到 {high:g} 之间"
        raise ValidationError(msg)
    if integer and value != int(value):
        msg = f"{label}: {raw!r} 应为整数"
        raise ValidationError(msg)
    return int(value) if integer else value


def _store_setting(session, user: User, key: str, value: dict, action: str) -> None:
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value
    audit.record(session, user, action, json.dumps(value, ensure_ascii=False))
    session.flush()


def save_formula(session, user: User, values: dict) -> dict[str, float]:
    """Validate and store the scoring weights (admin); only future computations change."""
    access.require(user, "publish")
    formula = {
        key: _number(values.get(key, DEFAULT_FORMULA[key]), FORMULA_LABELS[key])
        for key in DEFAULT_FORMULA
    }
    if formula["base"] <= 0:
        msg = f"{FORMULA_LABELS['base']}: 应大于 0"
        raise ValidationError(msg)
    if formula["floor"] >= formula["base"]:
        msg = f"{FORMULA_LABELS['floor']}: {formula['floor']:g} 应小于基础分 {formula['base']:g}"
        raise ValidationError(msg)
    _store_setting(session, user, FORMULA_KEY, formula, "assessment_formula")
    return formula


def save_lists_rule(session, user: User, values: dict) -> dict:
    """Validate and store the red/black list rule (admin)."""
    access.require(user, "publish")
    rule = {}
    for key, default in DEFAULT_LISTS.items():
        integer = key in _INT_LIST_KEYS
        rule[key] = _number(
            values.get(key, default),
            LISTS_LABELS[key],
            integer=integer,
            high=100 if integer else 1000,
        )
    if rule["interview_after"] < 1:
        msg = f"{LISTS_LABELS['interview_after']}: 至少为 1"
        raise ValidationError(msg)
    _store_setting(session, user, LISTS_KEY, rule, "assessment_lists")
    return rule


def county_name(session) -> str:
    """The county's name for a 通报's title (the ``county`` setting, else 本县)."""
    value = _setting(session, "county")
    return str(value.get("county_name") or value.get("name") or "本县")


def save_settings(session, user: User, values) -> tuple[dict, dict]:
    """Save the formula and the list rule together (one form, one transaction)."""
    return save_formula(session, user, values), save_lists_rule(session, user, values)
