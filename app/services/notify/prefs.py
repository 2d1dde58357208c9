"""Who gets what where: a user's outside routes for an event, and the county's channel settings.

In-app notices are always on and not routed here. Outside routes are email (to
``User.email``) and webhook (the unit's robot, else the county's). ``NotifyPreference`` rows
switch a route off or on for one user or a whole unit, per event or for every event
(``event="*"``); a user's row wins over their unit's, a named event over ``*``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import false, or_, select

from app.models import NotifyPreference, Setting, User
from app.services.core import audit
from app.services.core.errors import ValidationError
from app.services.core.settings import Settings
from app.services.notify.channels import WEBHOOK_KINDS

CHANNELS_KEY = "notify_channels"
ALL_EVENTS = "*"
OUTSIDE_CHANNELS = ("email", "webhook")


@dataclass(frozen=True)
class ChannelConfig:
    """The county's outside channels: the admin page's values over the deployment's.

    Attributes
    ----------
    smtp_url, smtp_from
        The SMTP server (``smtp://user:pass@host:port`` or ``smtps://``) and the From address.
    webhook_url, webhook_kind
        The county's robot or gateway and its kind ("wecom", "dingtalk", "json").
    quiet_start, quiet_end
        "HH:MM" county time; messages queued inside the window wait for its end.
    """

    smtp_url: str | None = None
    smtp_from: str | None = None
    webhook_url: str | None = None
    webhook_kind: str = "json"
    quiet_start: str | None = None
    quiet_end: str | None = None


def env_defaults(settings: Settings) -> ChannelConfig:
    """The channels as the deployment's environment sets them (shown as defaults)."""
    return ChannelConfig(smtp_url=settings.smtp_url, webhook_url=settings.notify_webhook_url,
                         webhook_kind=settings.notify_webhook_kind)


def channel_config(session, settings: Settings) -> ChannelConfig:
    """The channels in force: each field the admin page set, else the environment's."""
    config = env_defaults(settings)
    row = session.get(Setting, CHANNELS_KEY)
    stored = row.value if row is not None and isinstance(row.value, dict) else {}
    known = {k: v for k, v in stored.items() if k in ChannelConfig.__dataclass_fields__ and v}
    return replace(config, **known)


def save_channel_config(session, user: User, values: dict, *, ip: str | None = None) -> dict:
    """Store the admin page's channel settings (blank fields fall back to the environment).

    Raises
    ------
    ValidationError
        A URL, kind or quiet-hours time is malformed; the message names the field.
    """
    clean: dict = {}
    for name in ChannelConfig.__dataclass_fields__:
        value = str(values.get(name) or "").strip()
        clean[name] = value or None
    row = session.get(Setting, CHANNELS_KEY)
    stored = row.value if row is not None and isinstance(row.value, dict) else {}
    if clean["smtp_url"] and stored.get("smtp_url") and clean["smtp_url"] == mask_url(
            stored["smtp_url"]):
        clean["smtp_url"] = stored["smtp_url"]  # the page shows the password masked
    if clean["smtp_url"] and not clean["smtp_url"].startswith(("smtp://", "smtps://")):
        raise ValidationError("SMTP 地址应以 smtp:// 或 smtps:// 开头")
    if clean["webhook_url"] and not clean["webhook_url"].startswith(("http://", "https://")):
        raise ValidationError("Webhook 地址应以 http:// 或 https:// 开头")
    if clean["webhook_kind"] and clean["webhook_kind"] not in WEBHOOK_KINDS:
        raise ValidationError(f"Webhook 类型应为 {'/'.join(WEBHOOK_KINDS)} 之一")
    if bool(clean["quiet_start"]) != bool(clean["quiet_end"]):
        raise ValidationError("免打扰时段需同时填写开始和结束时间")
    for name, label in (("quiet_start", "免打扰开始"), ("quiet_end", "免打扰结束")):
        if clean[name]:
            clean[name] = parse_clock(clean[name], label).strftime("%H:%M")
    if row is None:
        session.add(Setting(key=CHANNELS_KEY, value=clean))
    else:
        row.value = clean
    # The audit log shows which settings changed, never the SMTP password.
    shown = {k: ("已设置" if v else "") if k == "smtp_url" else (v or "") for k, v in clean.items()}
    audit.record(session, user, "notify_channels",
                 "；".join(f"{k}={v}" for k, v in shown.items()), ip=ip)
    session.flush()
    return clean


def stored_config(session) -> dict:
    """The admin page's own values (blank where the environment's default applies)."""
    row = session.get(Setting, CHANNELS_KEY)
    stored = row.value if row is not None and isinstance(row.value, dict) else {}
    return {name: stored.get(name) or "" for name in ChannelConfig.__dataclass_fields__}


def mask_url(url: str | None) -> str:
    """``url`` with its password replaced by ``***`` (to show a URL on a page)."""
    if not url:
        return ""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def parse_clock(value: str, label: str = "时间") -> time:
    """Parse "HH:MM" (or "H:MM") as a time of day; ValidationError names ``label``."""
    try:
        hours, minutes = value.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise ValidationError(f"{label}应为 时:分，如 22:00，收到 “{value}”") from exc


def quiet_hours(session) -> ChannelConfig:
    """The admin page's channel settings alone (quiet hours have no environment default)."""
    return channel_config(session, Settings())


def quiet_until(config: ChannelConfig, now: datetime) -> datetime | None:
    """The end of the quiet hours ``now`` falls in, or None outside them (county time)."""
    if not (config.quiet_start and config.quiet_end):
        return None
    start, end = parse_clock(config.quiet_start), parse_clock(config.quiet_end)
    if start == end:
        return None
    clock = now.time()
    if start < end:  # e.g. 12:00–14:00
        inside = start <= clock < end
        end_day = now.date()
    else:  # over midnight, e.g. 22:00–07:00
        inside = clock >= start or clock < end
        end_day = now.date() + timedelta(days=1) if clock >= start else now.date()
    return datetime.combine(end_day, end) if inside else None


def _decision(rows: list[NotifyPreference], event: str) -> bool | None:
    """The most specific row's ``enabled`` (named event over ``*``), or None without a row."""
    for wanted in (event, ALL_EVENTS):
        for row in rows:
            if row.event == wanted:
                return bool(row.enabled)
    return None


def routes_for(session, user: User, event: str, settings: Settings) -> list[tuple[str, str]]:
    """The outside ``(channel, address)`` pairs ``user`` should get for ``event``.

    Parameters
    ----------
    session
        The database session.
    user
        The recipient; an inactive user gets nothing.
    event
        The event name (e.g. "dispatched", "due_soon").
    settings
        The installation's settings (for the environment's county webhook).

    Returns
    -------
    list of (str, str)
        ``("email", user.email)`` and ``("webhook", url)`` where on; the webhook is the
        unit's robot (a unit row with channel "webhook" and an address) or the county's.
    """
    if not user.active:
        return []
    rows = session.scalars(
        select(NotifyPreference).where(
            NotifyPreference.event.in_([event, ALL_EVENTS]),
            or_(NotifyPreference.user_id == user.id,
                NotifyPreference.unit_id == user.unit_id if user.unit_id else false()),
        ).order_by(NotifyPreference.id)
    ).all()
    routes: list[tuple[str, str]] = []
    config = channel_config(session, settings)
    for channel in OUTSIDE_CHANNELS:
        mine = [r for r in rows if r.user_id == user.id and r.channel == channel]
        unit = [r for r in rows if r.user_id is None and r.channel == channel]
        on = _decision(mine, event)
        if on is None:
            on = _decision(unit, event)
        if on is False:
            continue
        if channel == "email":
            if user.email:
                routes.append(("email", user.email.strip()))
            continue
        robot = next((r.address for wanted in (event, ALL_EVENTS) for r in unit
                      if r.event == wanted and r.enabled and r.address), None)
        url = robot or config.webhook_url
        if url:
            routes.append(("webhook", url))
    return routes
