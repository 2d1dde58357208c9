"""The one settings object services read: built from the app config by the caller.

Services read no web framework globals and no process environment: a view or command
passes ``Settings`` (``app.config.current_settings()``) or the single value a service needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gis.demo_town.data import COUNTY_CODE as DEMO_COUNTY_CODE


@dataclass(frozen=True)
class Settings:
    """What services need to know about this installation.

    Attributes
    ----------
    county_code
        The county's 6-digit GB/T 2260 code, the first six digits of every cell code.
    instance_dir, photo_dir, backup_dir
        Where the database's files, problem photos and backups live.
    max_photo_bytes
        The largest photo accepted from a phone.
    cjk_font
        A font file to use for Chinese in PDFs, ahead of the system's fonts.
    smtp_url, notify_webhook_url, notify_webhook_kind
        The deployment's outside channels (``SMTP_URL``, ``NOTIFY_WEBHOOK_URL``,
        ``NOTIFY_WEBHOOK_KIND``): defaults the admin page (消息通道) may override.
    """

    county_code: str = DEMO_COUNTY_CODE  # until the county sets COUNTY_CODE
    instance_dir: Path = Path("instance")
    photo_dir: Path = Path("instance/photos")
    backup_dir: Path = Path("instance/backups")
    max_photo_bytes: int = 10 * 1024 * 1024
    cjk_font: str | None = None
    smtp_url: str | None = None
    notify_webhook_url: str | None = None
    notify_webhook_kind: str = "json"

    @classmethod
    def from_config(cls, config: Mapping) -> Settings:
        """Read the settings from a Flask-style config mapping."""
        instance = Path(config.get("INSTANCE_DIR") or "instance")
        return cls(
            county_code=str(config.get("COUNTY_CODE") or cls.county_code),
            instance_dir=instance,
            photo_dir=Path(config.get("PHOTO_DIR") or instance / "photos"),
            backup_dir=Path(config.get("BACKUP_DIR") or instance / "backups"),
            max_photo_bytes=int(config.get("MAX_PHOTO_BYTES") or cls.max_photo_bytes),
            cjk_font=config.get("CJK_FONT") or None,
            smtp_url=config.get("SMTP_URL") or None,
            notify_webhook_url=config.get("NOTIFY_WEBHOOK_URL") or None,
            notify_webhook_kind=str(config.get("NOTIFY_WEBHOOK_KIND") or cls.notify_webhook_kind),
        )
