"""SQLAlchemy models. Geometry is stored portably as GeoJSON text plus a bounding box.

The spatial work happens in ``gis/``; the database only filters by bounding box, so the
same schema runs on SQLite and PostgreSQL (DESIGN rule 3).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

from shapely.geometry import mapping, shape
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

# The county works in one time zone and reads every time as Beijing time, so timestamps are
# stored naive in Asia/Shanghai (deadlines and monthly assessments count local days).
COUNTY_TZ = ZoneInfo("Asia/Shanghai")


def now_local() -> datetime:
    """The current Beijing time, naive: how every timestamp is stored."""
    return datetime.now(COUNTY_TZ).replace(tzinfo=None)


def today_local() -> date:
    """The county's date (Asia/Shanghai), whatever the server's time zone."""
    return now_local().date()


ROLES = ("admin", "inspector", "unit_head", "leader")
ROLE_LABELS = {"admin": "创卫办", "inspector": "督查员", "unit_head": "责任单位", "leader": "领导"}

STATUSES = ("reported", "dispatched", "rectifying", "submitted", "closed", "rejected", "duplicate")
STATUS_LABELS = {
    "reported": "已上报",
    "dispatched": "已派遣",
    "rectifying": "整改中",
    "submitted": "待核查",
    "closed": "已销号",
    "rejected": "不予立案",
    "duplicate": "重复",
}
OPEN_STATUSES = ("reported", "dispatched", "rectifying", "submitted")

SOURCES = ("州级交叉检查", "省级暗访", "国家评估", "县级督查", "自查", "群众投诉/12345")


class GeometryMixin:
    """GeoJSON geometry text with a bounding box for cheap portable filtering."""

    geom: Mapped[str] = mapped_column(Text)
    minx: Mapped[float] = mapped_column(Float, index=True)
    miny: Mapped[float] = mapped_column(Float, index=True)
    maxx: Mapped[float] = mapped_column(Float)
    maxy: Mapped[float] = mapped_column(Float)

    def set_geometry(self, geom) -> None:
        """Store a shapely geometry (EPSG:4326)."""
        self.geom = json.dumps(mapping(geom), separators=(",", ":"))
        self.minx, self.miny, self.maxx, self.maxy = (float(v) for v in geom.bounds)

    @property
    def shape(self):
        return shape(json.loads(self.geom))


class Unit(db.Model):
    """责任单位: a department, sub-district office, community or company."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="department")
    contact: Mapped[str | None] = mapped_column(String(60))
    phone: Mapped[str | None] = mapped_column(String(30))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    users: Mapped[list[User]] = relationship(back_populates="unit")

    def __repr__(self) -> str:
        return f"<Unit {self.name}>"


class User(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(60))
    phone: Mapped[str | None] = mapped_column(String(30))
    email: Mapped[str | None] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped on logout-everywhere and password change; sessions carry it and die when stale.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)

    unit: Mapped[Unit | None] = relationship(back_populates="users")

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return bool(self.active)

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)


class ApiToken(db.Model):
    """A bearer token; only its SHA-256 is stored, the token is shown once."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    name: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class Layer(db.Model):
    """图层: a named geometry set (boundary, roads, pois, buildings, communities, ...)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20), index=True)
    source: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)

    features: Mapped[list[Feature]] = relationship(
        back_populates="layer", cascade="all, delete-orphan"
    )


class Feature(GeometryMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    layer_id: Mapped[int] = mapped_column(ForeignKey("layer.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200), index=True)
    code: Mapped[str | None] = mapped_column(String(40))
    ftype: Mapped[str | None] = mapped_column(String(40))
    props: Mapped[dict] = mapped_column(JSON, default=dict)

    layer: Mapped[Layer] = relationship(back_populates="features")


class GridLayer(db.Model):
    """网格图层: one version of the responsibility grid; exactly one is active."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    method: Mapped[str] = mapped_column(String(20))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime)
    cell_count: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped whenever cells are handed to other units, so cached map payloads expire.
    revision: Mapped[int] = mapped_column(Integer, default=1)

    cells: Mapped[list[Cell]] = relationship(back_populates="grid", cascade="all, delete-orphan")


class Cell(GeometryMixin, db.Model):
    """单元网格 with its 15-digit code and responsible unit."""

    __table_args__ = (UniqueConstraint("grid_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid_layer.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(15), index=True)
    subdistrict_code: Mapped[str] = mapped_column(String(3), default="000")
    community_code: Mapped[str] = mapped_column(String(3), default="000")
    area_m2: Mapped[float] = mapped_column(Float, default=0.0)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"), index=True)

    grid: Mapped[GridLayer] = relationship(back_populates="cells")
    unit: Mapped[Unit | None] = relationship()


class Zone(db.Model):
    """片区 or 社区 of one grid version: the community slot (3 digits) of its cells' codes.

    A provisional zone stands in for a community where none is mapped; it is cut along major
    roads and water and replaced when real communities are imported and the grid rebuilt.
    """

    __table_args__ = (UniqueConstraint("grid_id", "subdistrict_code", "community_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid_layer.id", ondelete="CASCADE"), index=True)
    subdistrict_code: Mapped[str] = mapped_column(String(3))
    community_code: Mapped[str] = mapped_column(String(3))
    name: Mapped[str] = mapped_column(String(120))
    subdistrict_name: Mapped[str | None] = mapped_column(String(120))
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    cell_count: Mapped[int] = mapped_column(Integer, default=0)


class Category(db.Model):
    """问题类别 from the national sanitary county standard."""

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(10), unique=True)
    name: Mapped[str] = mapped_column(String(60))
    level: Mapped[int] = mapped_column(Integer)
    parent_code: Mapped[str | None] = mapped_column(String(10))
    deadline_days: Mapped[int] = mapped_column(Integer, default=5)
    points: Mapped[float] = mapped_column(Float, default=1.0)
    # "先属主后属地": a functional unit answers for this category wherever it happens.
    functional_unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"))

    functional_unit: Mapped[Unit | None] = relationship()

    @property
    def label(self) -> str:
        return f"{self.code} {self.name}"


class CategoryAlias(db.Model):
    """A way inspectors write a category (环境卫生, 四害, 三小 ...), editable by the office."""

    id: Mapped[int] = mapped_column(primary_key=True)
    alias: Mapped[str] = mapped_column(String(60), unique=True)
    category_code: Mapped[str] = mapped_column(String(10))
    # True for rows an office typed or edited: init-db never overwrites them.
    edited: Mapped[bool] = mapped_column(Boolean, default=False)


class UnitAlias(db.Model):
    """Another name of a unit as lists write it (县住建局 = 县住房和城乡建设局)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    alias: Mapped[str] = mapped_column(String(120), unique=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"), index=True)

    unit: Mapped[Unit] = relationship()


class Batch(db.Model):
    """反馈批次: one list sent back by an inspection, with its problems and re-check."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(30))
    received_on: Mapped[date | None] = mapped_column(Date)
    filename: Mapped[str | None] = mapped_column(String(255))
    # Fingerprint of the file, so importing the same workbook again finds its batch.
    file_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # Counts of the import (placed, queued, by unit_source ...) and of the last 复核.
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    recheck: Mapped[dict | None] = mapped_column(JSON)

    issues: Mapped[list[Issue]] = relationship(back_populates="batch")


class Issue(db.Model):
    """问题: one problem at one place (or a paperwork problem with no place)."""

    __table_args__ = (
        Index("ix_issue_status_unit", "status", "unit_id"),
        Index("ix_issue_lonlat", "lon", "lat"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="reported", index=True)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("category.id"), index=True)
    description: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(30), default="县级督查")
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    cell_id: Mapped[int | None] = mapped_column(ForeignKey("cell.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"), index=True)
    geocode_method: Mapped[str | None] = mapped_column(String(30))
    geocode_confidence: Mapped[float | None] = mapped_column(Float)
    geocode_candidates: Mapped[list | None] = mapped_column(JSON)
    # 待定位: kept for manual placement, never dropped.
    needs_placement: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    outside_grid: Mapped[bool] = mapped_column(Boolean, default=False)
    found_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)
    deadline: Mapped[date | None] = mapped_column(Date)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    recurrence_of_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id"))
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id"))
    # Import key (file fingerprint + row) so re-importing a list creates no duplicates.
    external_ref: Mapped[str | None] = mapped_column(String(120), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    # The category as the list or reporter wrote it; 待分类 while nothing matched it.
    category_text: Mapped[str | None] = mapped_column(String(120))
    category_pending: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # 反馈批次 and the prefecture's own row number (序号) in it.
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batch.id"), index=True)
    batch_seq: Mapped[str | None] = mapped_column(String(20))
    # Who decided the unit: list | category | cell | manual; and the list's own words.
    unit_source: Mapped[str | None] = mapped_column(String(10))
    listed_unit: Mapped[str | None] = mapped_column(String(200))
    # {"list": name, "category": name, "cell": name}: the list named one unit, the rules another.
    routing_conflict: Mapped[dict | None] = mapped_column(JSON)
    # 整改措施: what the unit did, required to submit for verification.
    measures: Mapped[str | None] = mapped_column(Text)
    # The prefecture's 复核 of a returned list: passed | failed, with its note.
    recheck_result: Mapped[str | None] = mapped_column(String(10))
    recheck_note: Mapped[str | None] = mapped_column(Text)
    recheck_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Client-generated id of a report sent from a phone, so a retry stores it once.
    client_id: Mapped[str | None] = mapped_column(String(64), unique=True)

    category: Mapped[Category | None] = relationship()
    batch: Mapped[Batch | None] = relationship(back_populates="issues")
    co_units: Mapped[list[IssueUnit]] = relationship(cascade="all, delete-orphan")
    cell: Mapped[Cell | None] = relationship()
    unit: Mapped[Unit | None] = relationship()
    events: Mapped[list[IssueEvent]] = relationship(
        back_populates="issue", order_by="IssueEvent.id", cascade="all, delete-orphan"
    )
    photos: Mapped[list[Photo]] = relationship(back_populates="issue", cascade="all, delete-orphan")

    # Optimistic locking: an UPDATE that finds another version loses with StaleDataError.
    __mapper_args__ = {"version_id_col": version}

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def is_overdue(self, today: date | None = None) -> bool:
        today = today or today_local()
        return self.is_open and self.deadline is not None and self.deadline < today


class IssueUnit(db.Model):
    """A co-unit (协办单位) of a problem the list gave to several units; it sees and acts."""

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)

    unit: Mapped[Unit] = relationship()


class IssueEvent(db.Model):
    """处置记录: append-only history of an issue."""

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=now_local)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    action: Mapped[str] = mapped_column(String(30))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)

    issue: Mapped[Issue] = relationship(back_populates="events")
    user: Mapped[User | None] = relationship()


class Photo(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("issue_event.id"))
    kind: Mapped[str] = mapped_column(String(10), default="before")
    path: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    exif: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)

    issue: Mapped[Issue] = relationship(back_populates="photos")


class WorkdayOverride(db.Model):
    """A holiday (is_workday False) or make-up workday (调休, True); editable each December."""

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str | None] = mapped_column(String(40))


class CalendarYear(db.Model):
    """Which years have a complete holiday table (otherwise: weekends only, with a warning)."""

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(40), default="chinese-calendar")


class Patrol(db.Model):
    """巡查: a planned, ordered inspection route."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    mode: Mapped[str] = mapped_column(String(10), default="walk")
    inspector_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    planned_for: Mapped[date | None] = mapped_column(Date)
    length_m: Mapped[float] = mapped_column(Float, default=0.0)
    est_minutes: Mapped[float] = mapped_column(Float, default=0.0)
    start: Mapped[list | None] = mapped_column(JSON)
    legs: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)
    status: Mapped[str] = mapped_column(String(20), default="planned")
    # Where the route must finish (None: back to start, or at the last stop).
    end: Mapped[list | None] = mapped_column(JSON)
    return_to_start: Mapped[bool] = mapped_column(Boolean, default=True)
    # How the stops were chosen (kind, parameters, seed): enough to reproduce the plan.
    selection: Mapped[dict | None] = mapped_column(JSON)
    # Routes split among several inspectors share a batch key.
    batch: Mapped[str | None] = mapped_column(String(40), index=True)

    stops: Mapped[list[Stop]] = relationship(
        back_populates="patrol", order_by="Stop.seq", cascade="all, delete-orphan"
    )
    inspector: Mapped[User | None] = relationship(foreign_keys=[inspector_id])


class Stop(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    patrol_id: Mapped[int] = mapped_column(ForeignKey("patrol.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id"))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(255))
    result: Mapped[str | None] = mapped_column(String(20))
    remark: Mapped[str | None] = mapped_column(Text)
    # issue | cell | poi | lane | point: what the stop stands for.
    kind: Mapped[str] = mapped_column(String(10), default="issue")
    # Frozen at planning time for stops without a problem: address, cell code, unit, type.
    info: Mapped[dict | None] = mapped_column(JSON)
    # The problem reported at this stop as 新发现 (so saving twice creates it once).
    new_issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id"))

    patrol: Mapped[Patrol] = relationship(back_populates="stops")
    issue: Mapped[Issue | None] = relationship(foreign_keys=[issue_id])
    new_issue: Mapped[Issue | None] = relationship(foreign_keys=[new_issue_id])


class Assessment(db.Model):
    """考核: a frozen monthly snapshot, immutable once published."""

    __table_args__ = (UniqueConstraint("month", "scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
    scope: Mapped[str] = mapped_column(String(20), default="unit")
    published_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    data: Mapped[dict] = mapped_column(JSON)
    appeal_note: Mapped[str | None] = mapped_column(Text)
    appeal_resolved: Mapped[bool] = mapped_column(Boolean, default=False)


class Setting(db.Model):
    """Editable key/value settings (formula weights, thresholds, evaluation calendar)."""

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON)


class AuditLog(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=now_local, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))


class AssessmentAppeal(db.Model):
    """申诉: a unit head's objection to their own row of a published month; admin resolves it."""

    id: Mapped[int] = mapped_column(primary_key=True)
    assessment_id: Mapped[int] = mapped_column(
        ForeignKey("assessment.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    note: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    resolution: Mapped[str | None] = mapped_column(Text)

    unit: Mapped[Unit] = relationship()


class LoginThrottle(db.Model):
    """Failed-login counters shared by every worker (per account and per address)."""

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime)


class UserSession(db.Model):
    """One signed-in browser; plain logout revokes it, so a copied cookie dies with it."""

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))


class Notification(db.Model):
    """One in-app notice to one user (the bell); ``key`` makes sending it twice impossible."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(40), index=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(String(300))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id", ondelete="SET NULL"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batch.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_local, index=True)
    read_at: Mapped[datetime | None] = mapped_column(DateTime)


class OutboxMessage(db.Model):
    """A message for an outside channel (email, webhook), sent at most once, retried with backoff.

    A worker claims a row by setting ``lease_until``; a worker that dies leaves the lease to
    expire and another takes it. ``key`` is unique: the same notice is never queued twice.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(20), index=True)
    address: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    event: Mapped[str | None] = mapped_column(String(40))
    notification_id: Mapped[int | None] = mapped_column(
        ForeignKey("notification.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=now_local, index=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_local)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)


class NotifyPreference(db.Model):
    """Which events go to which channel, for one user or for a whole unit (user wins)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(20))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    address: Mapped[str | None] = mapped_column(String(300))
