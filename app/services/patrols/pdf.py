"""The printed patrol sheet: an A4 PDF (reportlab) with a route sketch and the stop table.

The PDF embeds a CJK TrueType font so the Chinese prints on any machine. reportlab's
TTFont reads TrueType outlines only; Noto CJK (CFF/PostScript outlines) is refused, so the
search prefers WenQuanYi Zen Hei (``apt-get install -y fonts-wqy-zenhei``) and other
TrueType CJK fonts, then anything fontconfig lists for Chinese that reportlab can load.
With none of those the sheet falls back to reportlab's built-in Adobe CID font
``STSong-Light`` (no file needed; readers substitute a Song face), so the PDF never fails
for want of a system font. The map is drawn from the stored legs and the roads layer, with
no tiles. All user text is cleaned and escaped before it reaches a reportlab Paragraph.
"""

from __future__ import annotations

import io
import logging
import math
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from shapely.geometry import LineString, MultiLineString

from app.models import Patrol, User, today_local
from app.services.core.cache import KeyedCache
from app.services.core.errors import ServiceError
from app.services.core.text import clean_text
from app.services.issues.photos import thumb_path
from app.services.patrols.plan import roads_gdf
from app.services.patrols.records import get_patrol, stop_rows

log = logging.getLogger(__name__)

FONT_NAME = "SaniGridCJK"
# reportlab's built-in Adobe-GB1 font: always available, nothing to embed.
CID_FONT_NAME = "STSong-Light"
# TrueType-outlined CJK fonts in Debian packages, best first.
FONT_CANDIDATES = (
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
    ("/usr/share/fonts/truetype/arphic/ukai.ttc", 0),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
)
MODE_LABELS = {"walk": "步行", "drive": "驾车"}
ROUTE_RED = "#d32f2f"
ROAD_GREY = "#c8c8c8"

# (candidates, fontconfig, configured font) -> the registered font name for that search.
FONTS: KeyedCache[str] = KeyedCache("registered CJK fonts", maxsize=8)


class FontNotFoundError(ServiceError):
    """No CJK font that reportlab can embed is installed."""

    status = 500


def _loadable(path: str, index: int) -> bool:
    # reportlab takes 0.1-0.15 s to import: only a patrol sheet pays it
    from reportlab.pdfbase.ttfonts import TTFont

    try:
        TTFont("probe", path, subfontIndex=index)
    except Exception:  # noqa: BLE001 - any failure means "not usable", try the next one
        return False
    return True


def _fontconfig_files() -> list[str]:
    if not shutil.which("fc-list"):
        return []
    try:
        out = subprocess.run(
            ["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    files = sorted({line.split(":", 1)[0].strip() for line in out.splitlines() if line.strip()})
    # TrueType files first: OpenType CJK fonts are usually CFF, which reportlab refuses.
    return sorted(files, key=lambda f: (not f.lower().endswith((".ttf", ".ttc")), f))


def find_cjk_font(
    candidates: tuple = FONT_CANDIDATES, *, fontconfig: bool = True, configured: str | None = None
) -> tuple[str, int]:
    """Return (path, subfont index) of a CJK TrueType font reportlab can embed.

    Parameters
    ----------
    candidates
        (path, subfont index) pairs tried first, in order.
    fontconfig
        Also try what ``fc-list :lang=zh`` lists.
    configured
        ``Settings.cjk_font`` (a path, optionally ``path#index``): overrides the search.

    Raises
    ------
    FontNotFoundError
        With the package to install when no usable font exists.
    """
    if configured:
        path, _, index = configured.partition("#")
        if Path(path).is_file() and _loadable(path, int(index or 0)):
            return path, int(index or 0)
        msg = f"配置 CJK_FONT (环境变量 SANIGRID_CJK_FONT) 指定的字体无法使用: {configured}"
        raise FontNotFoundError(msg)
    for path, index in candidates:
        if Path(path).is_file() and _loadable(path, index):
            return path, index
    for path in _fontconfig_files() if fontconfig else []:
        if _loadable(path, 0):
            return path, 0
    msg = (
        "未找到可嵌入 PDF 的中文 TrueType 字体 (Noto CJK 为 CFF 轮廓, reportlab 不支持)；"
        "请安装: apt-get install -y fonts-wqy-zenhei"
    )
    raise FontNotFoundError(msg)


def register_cjk_font(
    candidates: tuple = FONT_CANDIDATES, *, fontconfig: bool = True, configured: str | None = None
) -> str:
    """Register a CJK font with reportlab (once per search) and return its name.

    Parameters
    ----------
    candidates, fontconfig, configured
        Where to look for an embeddable TrueType font (see ``find_cjk_font``).

    Returns
    -------
    str
        The TrueType font's registered name, or ``CID_FONT_NAME`` when no TrueType CJK
        font can be found: the sheet prints either way.
    """

    def register() -> str:
        # reportlab takes 0.1-0.15 s to import: only a patrol sheet pays it
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont
        from reportlab.pdfbase.ttfonts import TTFont

        try:
            path, index = find_cjk_font(candidates, fontconfig=fontconfig, configured=configured)
        except FontNotFoundError as exc:
            log.warning("%s; using the built-in CID font %s", exc, CID_FONT_NAME)
            pdfmetrics.registerFont(UnicodeCIDFont(CID_FONT_NAME))
            return CID_FONT_NAME
        # One registered name per file, so two searches never clash.
        name = f"{FONT_NAME}-{abs(hash((path, index))):x}"
        pdfmetrics.registerFont(TTFont(name, path, subfontIndex=index))
        return name

    return FONTS.get_or_build((tuple(candidates), fontconfig, configured), register)


def _text(value: object) -> str:
    """Stored text made safe for a reportlab Paragraph: cleaned, then ``<&>`` escaped."""
    return escape(clean_text(value))


# ---- the route sketch --------------------------------------------------------------------


@dataclass
class Sketch:
    """A patrol projected onto a width×height box (y grows downwards, as in SVG)."""

    width: float
    height: float
    roads: list[list[tuple[float, float]]] = field(default_factory=list)
    route: list[list[tuple[float, float]]] = field(default_factory=list)
    stops: list[tuple[int, float, float]] = field(default_factory=list)
    start: tuple[float, float] | None = None
    scale_px: float = 0.0
    scale_label: str = ""

    def svg_path(self, line: list[tuple[float, float]]) -> str:
        return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in line)


def route_sketch(
    patrol: Patrol, roads=None, *, width: float = 700, height: float = 420, pad: float = 18
) -> Sketch:
    """Project the route, its stops and the roads around it into a drawing box."""
    legs = [
        f["geometry"]["coordinates"]
        for f in (patrol.legs or {}).get("features", [])
        if f.get("geometry", {}).get("type") == "LineString"
    ]
    pts = [(s.lon, s.lat) for s in patrol.stops] + [tuple(c) for leg in legs for c in leg]
    if patrol.start:
        pts.append(tuple(patrol.start))
    sketch = Sketch(width=width, height=height)
    if not pts:
        return sketch
    lons, lats = [p[0] for p in pts], [p[1] for p in pts]
    lat0 = (min(lats) + max(lats)) / 2
    kx = 111_320.0 * math.cos(math.radians(lat0))
    ky = 110_574.0
    # At least 300 m across, and a margin so stops on the edge keep their circles.
    span_x = max((max(lons) - min(lons)) * kx, 300.0) * 1.08
    span_y = max((max(lats) - min(lats)) * ky, 300.0) * 1.08
    scale = min((width - 2 * pad) / span_x, (height - 2 * pad) / span_y)
    cx, cy = (min(lons) + max(lons)) / 2, lat0

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return (width / 2 + (lon - cx) * kx * scale, height / 2 - (lat - cy) * ky * scale)

    half_w, half_h = width / 2 / scale / kx, height / 2 / scale / ky
    bbox = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    if roads is not None and len(roads):
        near = roads.cx[bbox[0] : bbox[2], bbox[1] : bbox[3]]
        for geom in near.geometry.clip_by_rect(*bbox):
            if geom is None or geom.is_empty:
                continue
            parts = geom.geoms if isinstance(geom, MultiLineString) else [geom]
            for part in parts:
                if isinstance(part, LineString) and len(part.coords) > 1:
                    sketch.roads.append([xy(x, y) for x, y in part.coords])
    sketch.route = [[xy(x, y) for x, y, *_ in leg] for leg in legs]
    sketch.stops = [(s.seq, *xy(s.lon, s.lat)) for s in patrol.stops]
    if patrol.start:
        sketch.start = xy(*patrol.start)
    # A scale bar of a round length about a fifth of the width.
    target = (width / 5) / scale
    nice = max(v for v in (50, 100, 200, 250, 500, 1000, 2000, 5000) if v <= max(target, 50))
    sketch.scale_px = nice * scale
    sketch.scale_label = f"{nice} 米" if nice < 1000 else f"{nice // 1000} 公里"
    return sketch


def _drawing(sketch: Sketch, font: str):
    # reportlab takes 0.1-0.15 s to import: only a patrol sheet pays it
    from reportlab.graphics.shapes import Circle, Drawing, Line, PolyLine, Rect, String
    from reportlab.lib import colors

    h = sketch.height
    d = Drawing(sketch.width, sketch.height)
    d.add(
        Rect(
            0,
            0,
            sketch.width,
            h,
            strokeColor=colors.HexColor("#888888"),
            fillColor=colors.HexColor("#fbfaf7"),
            strokeWidth=0.6,
        )
    )

    def flip(line):
        return [v for x, y in line for v in (x, h - y)]

    for line in sketch.roads:
        d.add(PolyLine(flip(line), strokeColor=colors.HexColor(ROAD_GREY), strokeWidth=0.7))
    for line in sketch.route:
        d.add(
            PolyLine(
                flip(line),
                strokeColor=colors.HexColor(ROUTE_RED),
                strokeWidth=2.0,
                strokeLineJoin=1,
                strokeLineCap=1,
            )
        )
    if sketch.start is not None:
        x, y = sketch.start
        d.add(
            Rect(
                x - 5,
                h - y - 5,
                10,
                10,
                fillColor=colors.HexColor("#1b5e20"),
                strokeColor=colors.white,
                strokeWidth=1,
            )
        )
        d.add(
            String(
                x + 7,
                h - y - 3,
                "起点",
                fontName=font,
                fontSize=7,
                fillColor=colors.HexColor("#1b5e20"),
            )
        )
    for seq, x, y in sketch.stops:
        d.add(
            Circle(
                x,
                h - y,
                6.5,
                fillColor=colors.white,
                strokeColor=colors.HexColor(ROUTE_RED),
                strokeWidth=1.4,
            )
        )
        d.add(
            String(
                x,
                h - y - 2.6,
                str(seq),
                fontName="Helvetica-Bold",
                fontSize=7.5,
                textAnchor="middle",
                fillColor=colors.HexColor("#111111"),
            )
        )
    if sketch.scale_px:
        x0, y0 = 10, 10
        d.add(Line(x0, y0, x0 + sketch.scale_px, y0, strokeWidth=1.5))
        d.add(Line(x0, y0, x0, y0 + 4, strokeWidth=1.5))
        d.add(Line(x0 + sketch.scale_px, y0, x0 + sketch.scale_px, y0 + 4, strokeWidth=1.5))
        d.add(
            String(x0 + sketch.scale_px + 4, y0 - 1, sketch.scale_label, fontName=font, fontSize=7)
        )
    d.add(String(sketch.width - 8, h - 14, "北 ↑", fontName=font, fontSize=8, textAnchor="end"))
    return d


# ---- the PDF -----------------------------------------------------------------------------


def patrol_pdf(
    session,
    user: User,
    patrol_id: int,
    *,
    photo_root: Path | None = None,
    cjk_font: str | None = None,
    font_candidates: tuple = FONT_CANDIDATES,
    fontconfig: bool = True,
) -> bytes:
    """Build the A4 patrol sheet of a patrol the user may see; return the PDF bytes.

    Parameters
    ----------
    session
        The database session.
    user
        Who asks; the patrol must be visible to them.
    patrol_id
        The patrol.
    photo_root
        Where photos are stored (``Settings.photo_dir``); without it no thumbnails.
    cjk_font
        ``Settings.cjk_font``: the font file to use ahead of any search.
    font_candidates, fontconfig
        Where to look for a TrueType CJK font (see ``register_cjk_font``); with none found
        the sheet uses the built-in CID font.
    """
    # reportlab takes 0.1-0.15 s to import: only a patrol sheet pays it
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        Image,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    patrol = get_patrol(session, user, patrol_id)
    rows = stop_rows(session, user, patrol)
    try:
        roads = roads_gdf(session)
    except ServiceError:
        roads = None
    font = register_cjk_font(font_candidates, fontconfig=fontconfig, configured=cjk_font)

    base = ParagraphStyle("base", fontName=font, fontSize=8, leading=10.5, wordWrap="CJK")
    small = ParagraphStyle("small", parent=base, fontSize=7.2, leading=9.4)
    head = ParagraphStyle("head", parent=base, fontSize=8, leading=10, textColor=colors.white)
    title = ParagraphStyle("title", parent=base, fontSize=15, leading=20, spaceAfter=2)
    meta = ParagraphStyle("meta", parent=base, fontSize=9, leading=13)

    buffer = io.BytesIO()
    margin = 12 * mm
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=margin,
        rightMargin=margin,
        topMargin=margin,
        bottomMargin=14 * mm,
        title=f"{clean_text(patrol.name)} 巡查路线单",
        author="SaniGrid 创卫网格",
    )
    width = A4[0] - 2 * margin
    story = [Paragraph(_text(f"{patrol.name} · 巡查路线单"), title)]
    start_name = (patrol.selection or {}).get("start_name")
    facts = [
        f"出行方式: {MODE_LABELS.get(patrol.mode, patrol.mode)}",
        f"巡查点: {len(rows)} 个",
        f"全长: {patrol.length_m / 1000:.2f} 公里",
        f"预计用时: 约 {math.ceil(patrol.est_minutes)} 分钟",
    ]
    if start_name:
        facts.append(f"起点: {start_name}")
    if patrol.planned_for:
        facts.append(f"计划日期: {patrol.planned_for.isoformat()}")
    story.append(Paragraph(_text("　".join(facts)), meta))
    story.append(Spacer(1, 3 * mm))
    sketch = route_sketch(patrol, roads, width=width, height=100 * mm, pad=14)
    story.append(_drawing(sketch, font))
    story.append(Spacer(1, 3 * mm))

    widths = [8, 30, 25, 22, 41, 18, 19, 23]
    header = ["序号", "地址", "网格编码", "责任单位", "问题摘要", "照片", "核查结果", "备注"]
    data = [[Paragraph(h, head) for h in header]]
    for row in rows:
        photo = ""
        if row["photo"] is not None and photo_root is not None:
            path = Path(photo_root) / thumb_path(row["photo"].path)
            if path.is_file():
                photo = Image(str(path), width=16 * mm, height=12 * mm, kind="proportional")
        summary = clean_text(row["summary"])
        if len(summary) > 90:
            summary = summary[:89] + "…"
        data.append(
            [
                Paragraph(str(row["seq"]), base),
                Paragraph(_text(row["address"]), small),
                Paragraph(_text(row["cell_code"] or "—"), small),
                Paragraph(_text(row["unit"] or "—"), small),
                Paragraph(_text(summary or "—"), small),
                photo,
                Paragraph("□ 已整改<br/>□ 未整改<br/>□ 新发现", small),
                "",
            ]
        )
    table = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#777777")),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#8e1b1b")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 2.5),
                ("RIGHTPADDING", (0, 0), (-1, -1), 2.5),
                ("TOPPADDING", (0, 1), (-1, -1), 2.5),
                ("BOTTOMPADDING", (0, 1), (-1, -1), 3),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f6f6f6")]),
            ]
        )
    )
    story.append(table)
    story.append(Spacer(1, 8 * mm))
    sign = Table(
        [
            [
                Paragraph("巡查人: ______________", meta),
                Paragraph("日期: ______ 年 ____ 月 ____ 日", meta),
                Paragraph("签字: ______________", meta),
            ]
        ],
        colWidths=[width * 0.3, width * 0.4, width * 0.3],
    )
    story.append(sign)

    printed = today_local().isoformat()

    def footer(canvas, doc_):
        canvas.saveState()
        canvas.setFont(font, 7.5)
        canvas.setFillColor(colors.HexColor("#666666"))
        canvas.drawString(
            margin, 8 * mm, f"创卫网格 SaniGrid · 巡查 #{patrol.id} · 打印于 {printed}"
        )
        canvas.drawRightString(A4[0] - margin, 8 * mm, f"第 {doc_.page} 页")
        canvas.restoreState()

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
