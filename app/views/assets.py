"""Offline map assets served from the XStatic packages (no CDN, DESIGN rule 4)."""

from __future__ import annotations

from pathlib import Path

import xstatic.pkg.d3
import xstatic.pkg.font_awesome
import xstatic.pkg.jquery
import xstatic.pkg.leaflet
import xstatic.pkg.leaflet_markercluster
from flask import Blueprint, abort, send_from_directory

bp = Blueprint("assets", __name__, url_prefix="/vendor")


def _package_dirs() -> dict[str, Path]:
    return {
        "leaflet": Path(xstatic.pkg.leaflet.BASE_DIR),
        "markercluster": Path(xstatic.pkg.leaflet_markercluster.BASE_DIR),
        "jquery": Path(xstatic.pkg.jquery.BASE_DIR),
        "fontawesome": Path(xstatic.pkg.font_awesome.BASE_DIR),
        "d3": Path(xstatic.pkg.d3.BASE_DIR),
    }


PACKAGES = _package_dirs()


@bp.get("/<package>/<path:filename>")
def vendor(package: str, filename: str):
    """Serve one file of a vendored asset package."""
    base = PACKAGES.get(package)
    if base is None:
        abort(404)
    response = send_from_directory(base, filename, max_age=86400 * 30)
    return response
