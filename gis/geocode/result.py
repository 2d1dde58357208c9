"""The geocoder's answer: ``GeocodeResult`` and the confidence of each method.

The confidence table is explained in the package docstring (:mod:`gis.geocode`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONFIDENCE: dict[str, float] = {
    "intersection_corner": 0.92,
    "intersection_side": 0.80,
    "intersection": 0.80,
    "house_exact": 0.95,
    "house_interpolated": 0.85,
    "house_interpolated_far": 0.70,
    "house_extrapolated": 0.60,
    "house_extrapolated_far": 0.45,
    "segment": 0.82,
    "poi": 0.90,
    "poi_gate": 0.85,
    "poi_near": 0.72,
    "community": 0.50,
    "road": 0.45,
    "short_road": 0.62,
}
QUEUE_BELOW = 0.6


@dataclass
class GeocodeResult:
    """The answer for one address.

    Attributes
    ----------
    lon, lat : float or None
        WGS-84 degrees; None when unresolved.
    method : str
        ``"intersection"``, ``"house_number"``, ``"segment"``, ``"poi"``, ``"alias"``,
        ``"community"``, ``"road"`` or ``"none"``.
    confidence : float
        0..1; the app queues results below 0.6 for manual placement.
    candidates : list of dict
        Up to 5 ``{name, kind, lon, lat, score}``, best first.
    normalized : str
        The normalised address text.
    message : str
        Why it failed, or what was assumed (Chinese).
    """

    lon: float | None
    lat: float | None
    method: str
    confidence: float
    candidates: list[dict[str, Any]] = field(default_factory=list)
    normalized: str = ""
    message: str = ""

    @property
    def placed(self) -> bool:
        """Whether the point is good enough to place without a person (≥ 0.6)."""
        return self.lon is not None and self.confidence >= QUEUE_BELOW


def no_result(norm: str, message: str) -> GeocodeResult:
    """Return the answer for an address that cannot be placed.

    Parameters
    ----------
    norm : str
        The normalised address text.
    message : str
        Why it failed (Chinese).

    Returns
    -------
    GeocodeResult
        ``method="none"``, no point, confidence 0.
    """
    return GeocodeResult(None, None, "none", 0.0, [], norm, message)


def candidate(name: str, kind: str, lon: float, lat: float, score: float) -> dict[str, Any]:
    """Return one entry of :attr:`GeocodeResult.candidates` (score rounded to 3 places)."""
    return {"name": name, "kind": kind, "lon": lon, "lat": lat, "score": round(score, 3)}
