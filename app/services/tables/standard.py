"""The standard tables a new database needs (DESIGN rule 9), loaded without overwriting.

``load_standard_tables`` is what ``init-db`` (and ``seed-demo``) run after the schema:
the national category table, the category synonyms, the working-day calendar from
chinese-calendar and the default settings. Each step only adds what is missing, so a
second run changes nothing and an office's edits survive.
"""

from __future__ import annotations

from pathlib import Path

from app.models import Setting
from app.services.core.errors import ValidationError
from app.services.tables import categories, category_match
from app.services.tables.workdays import seed_calendar

CATEGORY_FILE = "categories.csv"
ALIAS_FILE = "category_aliases.csv"


def default_settings() -> dict[str, dict]:
    """The settings a new database starts with (each stored only when missing).

    Services that read a setting with a default in code (the assessment formula, say) need
    no row; this holds the ones an office is expected to see and edit from day one.
    """
    return {category_match.PENDING_DAYS_KEY: {"days": category_match.DEFAULT_PENDING_DAYS}}


def load_default_settings(session) -> int:
    """Store the default settings that are missing; return how many were added.

    Parameters
    ----------
    session
        The database session.
    """
    added = 0
    for key, value in default_settings().items():
        if session.get(Setting, key) is None:
            session.add(Setting(key=key, value=value))
            added += 1
    session.flush()
    return added


def load_standard_tables(session, layers_dir: Path) -> dict[str, int]:
    """Load categories, synonyms, calendar and settings; idempotent.

    Parameters
    ----------
    session
        The database session (the schema must exist).
    layers_dir
        The folder holding ``categories.csv`` and ``category_aliases.csv``.

    Returns
    -------
    dict
        What was added: ``categories``, ``aliases``, ``calendar_years``, ``settings``
        (all 0 on a second run).
    """
    layers_dir = Path(layers_dir)
    if not (layers_dir / CATEGORY_FILE).is_file():
        msg = f"找不到类别表文件 {layers_dir / CATEGORY_FILE} (请检查 LAYERS_DIR 设置)"
        raise ValidationError(msg)
    added = {"categories": categories.seed_categories(session, layers_dir / CATEGORY_FILE)}
    alias_file = layers_dir / ALIAS_FILE
    added["aliases"] = categories.seed_aliases(session, alias_file) if alias_file.exists() else 0
    added["calendar_years"] = seed_calendar(session)
    added["settings"] = load_default_settings(session)
    return added
