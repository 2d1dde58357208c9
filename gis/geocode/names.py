"""Name matching: find the known road, POI, community or street a query means.

Exact names and aliases score 100; otherwise rapidfuzz ranks the names of that kind
(roads also by their core without the suffix: "人民" finds 人民路). Two names within
``TIE_MARGIN`` of the best are a tie, which lowers the confidence (``Match.factor``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz, process

from gis.address import normalize_address, split_road_suffix

MIN_ROAD_SCORE = 60.0
MIN_POI_SCORE = 72.0
TIE_MARGIN = 2.0
TIE_FACTOR = 0.6


def name_key(name: Any) -> str:
    """Return a name normalised the way addresses are (the key roads are stored under)."""
    return normalize_address(str(name)) if name is not None else ""


def light_key(name: Any) -> str:
    """Return a layer name as written, only unified in width and blanks."""
    return "".join(unicodedata.normalize("NFKC", str(name)).split()) if name is not None else ""


@dataclass
class Match:
    """A known name a query matched.

    Attributes
    ----------
    name : str
        The known name (a key of the table of its kind).
    score : float
        0..100; 100 for an exact name or an alias.
    via_alias : bool
        Whether the query was an alias of the name.
    tied : list of str
        Other names that scored within ``TIE_MARGIN`` of this one.
    """

    name: str
    score: float
    via_alias: bool = False
    tied: list[str] = field(default_factory=list)

    @property
    def factor(self) -> float:
        """The confidence factor of this match (1 for an exact name; ties × 0.6)."""
        base = 1.0 if self.score >= 100 else 0.75 + 0.25 * (self.score - 60.0) / 40.0
        return base * (TIE_FACTOR if self.tied else 1.0)


class NameIndex:
    """The known names of each kind, matched to queries with a cache.

    Parameters
    ----------
    tables : mapping
        Kind (``"road"``, ``"poi"``, ``"community"``, ``"street"``) → the geocoder's
        table of that kind, keyed by name.
    aliases : mapping
        Alias → canonical name, both already keyed with :func:`name_key`.
    """

    def __init__(self, tables: Mapping[str, Mapping[str, Any]], aliases: Mapping[str, str]) -> None:
        self._tables = tables
        self._aliases = aliases
        # Lookup tables per kind: the names fuzzy matching runs over.
        self._names = {kind: list(table) for kind, table in tables.items()}
        self._road_cores = [split_road_suffix(n)[0] for n in self._names["road"]]
        self._cache: dict[tuple[str, str], Match | None] = {}

    def match(self, query: str, *, kind: str) -> Match | None:
        """Return the best known name of a kind for a query, or None below the cut-off."""
        key = (query, kind)
        if key not in self._cache:
            self._cache[key] = self._match_uncached(query, kind)
        return self._cache[key]

    def _match_uncached(self, query: str, kind: str) -> Match | None:
        names = self._names[kind]
        if not query or not names:
            return None
        table = self._tables[kind]
        if query in table:
            return Match(query, 100.0)
        target = self._aliases.get(query)
        if target is not None and target in table:
            return Match(target, 100.0, via_alias=True)
        if kind in ("road", "street"):
            scored = self._score_roads(query, names)
        else:
            hits = process.extract(
                query, names, scorer=fuzz.WRatio, limit=5, score_cutoff=MIN_POI_SCORE
            )
            scored = [(name, float(score)) for name, score, _ in hits]
        if not scored:
            return None
        best_name, best = scored[0]
        # Two keys of one place (raw and normalised POI names) are not a tie.
        tied = [
            n for n, s in scored[1:] if best - s <= TIE_MARGIN and table[n] is not table[best_name]
        ]
        return Match(best_name, best, tied=tied)

    def _score_roads(self, query: str, names: list[str]) -> list[tuple[str, float]]:
        core, suffix = split_road_suffix(query)
        full = process.extract(query, names, scorer=fuzz.ratio, limit=5, score_cutoff=40)
        scores: dict[str, float] = {name: float(score) for name, score, _ in full}
        cores = self._road_cores if names is self._names["road"] else None
        if cores is None:
            cores = [split_road_suffix(n)[0] for n in names]
        for _, score, idx in process.extract(core, cores, scorer=fuzz.ratio, limit=5):
            name = names[idx]
            other = split_road_suffix(name)[1]
            # A missing suffix ("人民") costs little, a different one ("人民街") more.
            if not suffix:
                value = score * 0.95
            elif suffix == other:
                value = score
            else:
                value = score * 0.85
            if len(core) < 2 and score < 100:
                continue
            scores[name] = max(scores.get(name, 0.0), float(value))
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(n, s) for n, s in ranked if s >= MIN_ROAD_SCORE][:5]
