"""Town geometry of the demo county seat: the valley frame, boundary, river, streets, communities.

Everything is built in a *valley frame* ``(s, n)``: ``s`` runs along the curving valley
axis and ``n`` across it (positive on the north-west bank). Streets are drawn in that
frame, so they follow the valley and the contour lines of its slopes as real hillside
towns do, and are then mapped to metres in the local UTM zone. The constants below are
parameters of that geometry; the street names drawn from the pools come from
``gis.demo_town.data``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon
from shapely.ops import split, unary_union

from gis.demo_town.data import POOLS, SEAT_NAME

CENTER_LON, CENTER_LAT = 103.4215, 22.8638
HALF_LENGTH = 4500.0  # half the valley length covered by the town, metres
VALLEY_ANGLE = math.radians(35.0)  # the valley axis runs from south-west to north-east


class Valley:
    """Map valley coordinates (s along the axis, n across it) to UTM metres."""

    def __init__(self, *, e0: float, n0: float) -> None:
        self.e0, self.n0 = e0, n0
        self.k1, self.k2 = 2 * math.pi / 9000.0, 2 * math.pi / 3300.0

    def to_xy(self, s, n) -> np.ndarray:
        s = np.asarray(s, dtype=float)
        n = np.asarray(n, dtype=float)
        k1, k2 = self.k1, self.k2
        y = 420 * np.sin(k1 * s + 0.4) + 80 * np.sin(k2 * s + 1.3)
        dy = 420 * k1 * np.cos(k1 * s + 0.4) + 80 * k2 * np.cos(k2 * s + 1.3)
        norm = np.sqrt(1 + dy * dy)
        x0 = s - n * dy / norm
        y0 = y + n / norm
        c, si = math.cos(VALLEY_ANGLE), math.sin(VALLEY_ANGLE)
        return np.column_stack([x0 * c - y0 * si + self.e0, x0 * si + y0 * c + self.n0])

    def line(self, s, n) -> LineString:
        """Map a polyline given in the valley frame, densified so curves stay smooth."""
        s = np.asarray(s, dtype=float)
        n = np.asarray(n, dtype=float)
        ss, nn = [s[0]], [n[0]]
        for i in range(1, len(s)):
            steps = max(1, int(math.hypot(s[i] - s[i - 1], n[i] - n[i - 1]) // 25))
            t = np.arange(1, steps + 1) / steps
            ss.extend(s[i - 1] + (s[i] - s[i - 1]) * t)
            nn.extend(n[i - 1] + (n[i] - n[i - 1]) * t)
        return LineString(self.to_xy(ss, nn))

    def along(self, x: float, y: float) -> float:
        """Return a point's position along the valley direction (for west→east order)."""
        return (x - self.e0) * math.cos(VALLEY_ANGLE) + (y - self.n0) * math.sin(VALLEY_ANGLE)


def _wave(rng: np.random.Generator, *, amp: float, periods: tuple[float, ...]):
    """Return a smooth random function of s: a sum of sines with random phases."""
    phases = rng.uniform(0, 2 * math.pi, len(periods))
    weights = rng.uniform(0.6, 1.0, len(periods))

    def f(s):
        s = np.asarray(s, dtype=float)
        return sum(
            amp * w * np.sin(2 * math.pi * s / p + ph)
            for w, p, ph in zip(weights, periods, phases, strict=True)
        )

    return f


@dataclass
class _Source:
    """A drawn street before noding: its line, names along it and its attributes."""

    line: LineString
    names: list[tuple[float, str, str]]  # (end distance along line, name, highway)
    side: str
    s_mid: float
    oneway: str = "no"
    kind: str = "street"

    def name_at(self, distance: float) -> tuple[str, str]:
        for end, name, highway in self.names:
            if distance <= end:
                return name, highway
        return self.names[-1][1], self.names[-1][2]


class NamePool:
    """Hand out unique, plausible lane names."""

    def __init__(self, rng: np.random.Generator) -> None:
        words = list(POOLS["lane_words"])
        rng.shuffle(words)
        self.words = words
        self.rng = rng
        self.used: set[str] = set()
        self.round = 0

    def reserve(self, *names: str) -> None:
        self.used.update(names)

    def take(self, *, suffix: str | None = None) -> str:
        while True:
            if not self.words:
                self.refill()
            word = self.words.pop()
            suffixes = POOLS["lane_suffixes"]
            name = word + (suffix or suffixes[int(self.rng.integers(len(suffixes)))])
            if name not in self.used:
                self.used.add(name)
                return name

    def refill(self) -> None:
        """Start a new round of names: 上/下/新/后 variants, as towns name later lanes."""
        self.round += 1
        if self.round > len(POOLS["lane_name_rounds"]):
            msg = "街巷名称池已用尽"
            raise RuntimeError(msg)
        mark = POOLS["lane_name_rounds"][self.round - 1]
        words = [w + mark for w in POOLS["lane_words"] if len(w) == 2]
        self.rng.shuffle(words)
        self.words = words


def _river_n(s):
    s = np.asarray(s, dtype=float)
    taper = 0.45 + 0.55 * np.clip(1 - (s / HALF_LENGTH) ** 6, 0, 1)
    return taper * (
        140 * np.sin(2 * math.pi * s / 1700 + 0.5) + 35 * np.sin(2 * math.pi * s / 640 + 2.0)
    )


def _half_widths(s):
    s = np.asarray(s, dtype=float)
    taper = np.sqrt(np.clip(1 - (np.abs(s) / HALF_LENGTH) ** 4, 0.05, 1))
    left = (
        1150
        + 170 * np.sin(2 * math.pi * s / 2600 + 0.7)
        + 110 * np.sin(2 * math.pi * s / 1100 + 2.1)
        + 480 * np.exp(-(((s - 1200) / 480) ** 2))
    ) * taper
    right = (
        1000
        + 190 * np.sin(2 * math.pi * s / 3100 + 1.9)
        + 90 * np.sin(2 * math.pi * s / 900 + 0.3)
        + 380 * np.exp(-(((s + 2300) / 430) ** 2))
    ) * taper
    return np.maximum(left, 260.0), np.maximum(right, 260.0)


def build_boundary(valley: Valley, rng: np.random.Generator) -> Polygon:
    """Return the built-up area: the valley floor between the two slopes' tapering edges."""
    s = np.linspace(-HALF_LENGTH, HALF_LENGTH, 241)
    left, right = _half_widths(s)
    left = left + rng.normal(0, 10, len(s))
    right = right + rng.normal(0, 10, len(s))
    ring = np.vstack([valley.to_xy(s, left), valley.to_xy(s[::-1], -right[::-1])])
    return shapely.make_valid(Polygon(ring)).buffer(0)


def build_river(valley: Valley) -> tuple[LineString, Polygon]:
    """Return the river's centre line and its water surface (36–54 m wide)."""
    s = np.arange(-HALF_LENGTH - 400, HALF_LENGTH + 401, 20.0)
    center = valley.to_xy(s, _river_n(s))
    d = np.gradient(center, axis=0)
    d /= np.linalg.norm(d, axis=1)[:, None]
    normal = np.column_stack([-d[:, 1], d[:, 0]])
    width = 45 + 9 * np.sin(2 * math.pi * s / 1300 + 0.8)  # 36–54 m of water surface
    left = center + normal * (width / 2)[:, None]
    right = center - normal * (width / 2)[:, None]
    water = shapely.make_valid(Polygon(np.vstack([left, right[::-1]]))).buffer(0)
    return LineString(center), water


def _street_levels(rng: np.random.Generator) -> dict[str, list]:
    """Return the contour-following longitudinal streets: level → (n(s), sections)."""
    w = {
        k: _wave(rng, amp=amp, periods=per)
        for k, amp, per in (
            ("L1", 45, (1500, 700)),
            ("L2", 55, (1900, 800)),
            ("L3", 60, (2300, 900)),
            ("R1", 40, (1700, 650)),
            ("R2", 55, (2100, 850)),
            ("R3", 60, (2500, 950)),
        )
    }
    inf = float("inf")
    return {
        "L0": (
            lambda s: _river_n(s) + 80,
            [
                (-1000, "西河沿街", "tertiary"),
                (1800, "滨河路", "secondary"),
                (inf, "滨河东路", "tertiary"),
            ],
        ),
        "L1": (
            lambda s: 420 + w["L1"](s),
            [
                (-2200, "西门街", "tertiary"),
                (600, "人民路", "primary"),
                (2600, "人民东路", "primary"),
                (inf, "东风路", "secondary"),
            ],
        ),
        "L2": (
            lambda s: 740 + w["L2"](s),
            [
                (-1500, "文庙街", "tertiary"),
                (1500, "建设路", "secondary"),
                (inf, "新华路", "secondary"),
            ],
        ),
        "L3": (
            lambda s: 1030 + w["L3"](s),
            [(0, "环城北路", "tertiary"), (inf, "北山路", "tertiary")],
        ),
        "R0": (
            lambda s: _river_n(s) - 80,
            [(0, "滨江路", "tertiary"), (inf, "南滨路", "tertiary")],
        ),
        "R1": (
            lambda s: -420 + w["R1"](s),
            [(-1800, "口岸大道", "primary"), (inf, "南溪大道", "primary")],
        ),
        "R2": (
            lambda s: -720 + w["R2"](s),
            [(0, "团结路", "secondary"), (inf, "振兴路", "secondary")],
        ),
        "R3": (lambda s: -990 + w["R3"](s), [(inf, "南山路", "tertiary")]),
    }


_MAJOR_CROSS = (
    (-3300.0, "迎宾路", "secondary"),
    (-1900.0, "民族路", "secondary"),
    (-700.0, "解放路", "secondary"),
    (300.0, "文化路", "secondary"),
    (1300.0, "青年路", "tertiary"),
    (2500.0, "兴旺路", "tertiary"),
    (3600.0, "东环路", "tertiary"),
)
_DIVIDERS = {"L": (-1900.0, -700.0, 300.0, 1300.0, 2500.0), "R": (-1900.0, 300.0, 2500.0)}


def _cross_s(s0: float, tilt: float, wob, n):
    return s0 + tilt * np.asarray(n, dtype=float) + wob(n)


def draw_streets(valley: Valley, rng: np.random.Generator, pool: NamePool):
    """Draw every street in the valley frame.

    Contour-following streets on both slopes, major cross streets, lanes climbing the
    slopes, old-town alleys and a footbridge, each named from ``pool``.

    Returns
    -------
    sources : list
        The drawn streets (line, names along it, side, oneway) before noding.
    majors : dict
        Valley position ``s`` → line of each major cross street (for ``build_partition``).
    level_lines : dict
        Level key (``L0``…``R3``) → line of each contour street.
    """
    levels = _street_levels(rng)
    sources: list[_Source] = []
    s_all = np.arange(-HALF_LENGTH - 200, HALF_LENGTH + 201, 20.0)
    level_lines = {}
    for key, (fn, sections) in levels.items():
        line = valley.line(s_all, fn(s_all))
        level_lines[key] = line
        names, start = [], -HALF_LENGTH - 200
        for end, name, highway in sections:
            d_end = line.length if end == float("inf") else _distance_at_s(valley, line, end, fn)
            names.append((d_end, name, highway))
            start = end
        del start
        sources.append(
            _Source(
                line=line,
                names=names,
                side=key[0],
                s_mid=0.0,
                oneway="yes" if key == "L1x" else "no",
                kind="level",
            )
        )
    pool.reserve(*(n for _, secs in levels.values() for _, n, _ in secs))
    pool.reserve(*(name for _, name, _ in _MAJOR_CROSS))

    tilt_wave = {side: _wave(rng, amp=0.07, periods=(4200.0,)) for side in "LR"}
    majors = {}
    for s0, name, highway in _MAJOR_CROSS:
        tilt = float(tilt_wave["L"](s0)) * 0.5
        wob = _wave(rng, amp=10, periods=(420.0, 230.0))
        n = np.arange(-1900.0, 2101.0, 50.0)
        line = valley.line(_cross_s(s0, tilt, wob, n), n)
        majors[s0] = line
        sources.append(
            _Source(
                line=line, names=[(line.length, name, highway)], side="B", s_mid=s0, kind="major"
            )
        )

    # A covered footbridge (风雨桥) in the old town joins the two river-side streets.
    n = np.array([-120.0, 0.0, 120.0]) + _river_n(-1250.0)
    line = valley.line(np.array([-1250.0, -1240.0, -1250.0]), n)
    sources.append(
        _Source(
            line=line,
            names=[(line.length, "风雨桥", "footway")],
            side="B",
            s_mid=-1250.0,
            kind="footbridge",
        )
    )

    major_s = np.array([m[0] for m in _MAJOR_CROSS])
    for side, sign in (("L", 1.0), ("R", -1.0)):
        keys = [f"{side}{i}" for i in range(4)]
        s = -HALF_LENGTH + 80.0
        minors = []
        while s < HALF_LENGTH - 60:
            old_town = side == "L" and -2300 < s < 900
            s += float(rng.uniform(95, 150) if old_town else rng.uniform(130, 250))
            if np.min(np.abs(major_s - s)) < 70:
                continue
            tilt = float(tilt_wave[side](s)) + float(rng.uniform(-0.03, 0.03))
            wob = _wave(rng, amp=float(rng.uniform(5, 14)), periods=(330.0, 170.0))
            first = 0 if rng.random() < 0.85 else 1
            last = int(rng.choice([1, 2, 3, 4], p=[0.22, 0.3, 0.23, 0.25]))
            if last <= first:
                last = first + 1
            fn0 = levels[keys[first]][0]
            n_start = float(fn0(s)) - sign * 6
            # Lanes reaching the top run on up the slope and are cut by the boundary.
            n_end = sign * 1900.0 if last == 4 else float(levels[keys[last]][0](s)) + sign * 6
            n = np.linspace(n_start, n_end, max(3, int(abs(n_end - n_start) // 45)))
            ss = _cross_s(s, tilt, wob, n - n_start)
            line = valley.line(ss, n)
            # One name per stretch between two contour streets, sometimes kept across.
            names = []
            name = pool.take()
            for lvl in range(first + 1, last + 1):
                if lvl < 4:
                    crossing = line.intersection(level_lines[keys[lvl]])
                    d_end = _first_distance(line, crossing)
                else:
                    d_end = line.length
                if lvl == 4:
                    highway = "steps" if rng.random() < 0.5 else "footway"
                    if names:
                        name = pool.take(suffix="坡")
                elif old_town:
                    highway = "living_street" if rng.random() < 0.6 else "residential"
                else:
                    highway = "residential"
                if d_end is None:
                    break
                names.append((d_end, name, highway))
                if rng.random() < 0.55 and lvl < 3:
                    name = pool.take()
            if not names:
                continue
            src = _Source(
                line=line,
                names=names,
                side=side,
                s_mid=s,
                kind="minor",
                oneway="yes" if old_town and rng.random() < 0.12 else "no",
            )
            sources.append(src)
            minors.append((s, tilt, wob, n_start, first, last))

        # Old-town alleys and service roads along the contours between two cross streets.
        for (s_a, t_a, w_a, n0_a, f_a, l_a), (s_b, t_b, w_b, n0_b, f_b, l_b) in zip(
            minors[:-1], minors[1:], strict=True
        ):
            if f_a > 0 or f_b > 0 or min(l_a, l_b) < 1:
                continue
            old_town = side == "L" and -2300 < s_a < 900
            if not old_town and rng.random() > 0.18:
                continue
            if old_town and rng.random() > 0.65:
                continue
            n_mid = (
                float(levels[keys[0]][0]((s_a + s_b) / 2))
                + float(levels[keys[1]][0]((s_a + s_b) / 2))
            ) / 2
            n_mid += float(rng.uniform(-25, 25))
            sa = float(_cross_s(s_a, t_a, w_a, n_mid - n0_a)) - 6
            sb = float(_cross_s(s_b, t_b, w_b, n_mid - n0_b)) + 6
            if sb - sa < 50:
                continue
            ss = np.linspace(sa, sb, 5)
            nn = n_mid + rng.normal(0, 6, 5)
            line = valley.line(ss, nn)
            highway = "living_street" if old_town else "service"
            name = pool.take(suffix="巷") if old_town else pool.take(suffix="路")
            sources.append(
                _Source(
                    line=line,
                    names=[(line.length, name, highway)],
                    side=side,
                    s_mid=(s_a + s_b) / 2,
                    kind="alley",
                    oneway="yes" if old_town and rng.random() < 0.3 else "no",
                )
            )
    return sources, majors, level_lines


def _first_distance(line: LineString, crossing) -> float | None:
    if crossing.is_empty:
        return None
    points = [g for g in getattr(crossing, "geoms", [crossing]) if g.geom_type == "Point"]
    if not points:
        return None
    return min(line.project(p) for p in points)


def _distance_at_s(valley: Valley, line: LineString, s: float, fn) -> float:
    x, y = valley.to_xy([s], [float(fn(s))])[0]
    return line.project(Point(x, y))


def node_streets(sources: list[_Source], *, boundary: Polygon, water: Polygon):
    """Clip, node and clean the drawn streets into one connected network.

    Returns
    -------
    segments : list of (LineString, int)
        Noded segments with the index of the source street each comes from.
    noded : shapely geometry
        Everything noded, river banks included.
    """
    inner = boundary.buffer(-2.0)
    clipped = [src.line.intersection(inner) for src in sources]
    banks = water.boundary.intersection(boundary.buffer(50))
    noded = unary_union([g for g in clipped if not g.is_empty] + [banks])
    tree = shapely.STRtree([src.line for src in sources])
    segments = []
    for seg in getattr(noded, "geoms", [noded]):
        if seg.length < 0.05:
            continue
        mid = seg.interpolate(0.5, normalized=True)
        hits = tree.query(mid, predicate="dwithin", distance=0.01)
        if len(hits) == 0:
            continue  # a river bank
        idx = int(min(hits))
        segments.append((seg, idx))

    # Drop the overshoot stubs left past each junction, then keep one connected network.
    for _ in range(2):
        degree: dict[tuple, int] = {}
        for seg, _idx in segments:
            for c in (seg.coords[0], seg.coords[-1]):
                degree[c] = degree.get(c, 0) + 1
        segments = [
            (seg, idx)
            for seg, idx in segments
            if not (seg.length < 12 and (degree[seg.coords[0]] == 1 or degree[seg.coords[-1]] == 1))
        ]
    graph = nx.Graph()
    for i, (seg, _idx) in enumerate(segments):
        graph.add_edge(seg.coords[0], seg.coords[-1], key=i)
    main = max(nx.connected_components(graph), key=len)
    return [(seg, idx) for seg, idx in segments if seg.coords[0] in main], noded
def build_partition(
    boundary: Polygon, river_line: LineString, majors: dict, valley: Valley, county_code: str
) -> tuple[list[dict], list[dict]]:
    """Split the town into its two sub-districts (by the river) and their communities.

    Returns
    -------
    sub_rows, com_rows : list of dict
        Records with ``geometry`` in UTM metres; communities carry ``name, code,
        subdistrict_code, subdistrict`` and are ordered along the valley.
    """
    halves = [g for g in split(boundary, river_line).geoms]
    # The north-west bank (n > 0) holds the old town (云岭镇); the other bank is 南溪街道.
    probe = Point(valley.to_xy([0.0], [600.0])[0])
    left = next(h for h in halves if h.contains(probe))
    right = unary_union([h for h in halves if h is not left])
    subs = [("001", SEAT_NAME, left, "L"), ("002", "南溪街道", right, "R")]
    sub_rows, com_rows = [], []
    for code, name, poly, side in subs:
        pieces = [poly]
        for s0 in _DIVIDERS[side]:
            nxt = []
            for piece in pieces:
                nxt.extend(split(piece, majors[s0]).geoms)
            pieces = nxt
        pieces.sort(key=lambda g: valley.along(g.centroid.x, g.centroid.y))
        com_names = POOLS["communities"][side]
        if len(pieces) != len(com_names):
            msg = f"社区划分数目不符: {name} 得到 {len(pieces)} 块"
            raise RuntimeError(msg)
        for i, (piece, cname) in enumerate(zip(pieces, com_names, strict=True), start=1):
            com_rows.append(
                {
                    "name": cname,
                    "code": f"{i:03d}",
                    "subdistrict_code": code,
                    "subdistrict": name,
                    "geometry": piece,
                }
            )
        sub_rows.append({"name": name, "code": code, "county_code": county_code, "geometry": poly})
    return sub_rows, com_rows
