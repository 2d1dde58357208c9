"""Errors raised by the geometry core; the app maps them to HTTP in one place."""


class GisError(Exception):
    """Base class for every error of the geometry core."""


class CRSError(GisError):
    """A coordinate reference system is missing, unknown or not supported."""


class CoordinateError(GisError):
    """A coordinate is not a number, out of range, or far from the county seat."""


class LayerReadError(GisError):
    """A layer file cannot be read or lacks what its kind needs."""


class InvalidGeometryError(GisError):
    """A geometry is invalid and cannot be repaired."""


class OutsideGridError(GisError):
    """A point falls outside every cell of the grid."""


class GridBuildError(GisError):
    """A grid cannot be built from the given boundary and layers."""


class AddressNotFoundError(GisError):
    """An address cannot be resolved from the county's own layers."""


class RoutingError(GisError):
    """A patrol route cannot be computed (e.g. stops on disconnected roads)."""


class LayerWriteError(GisError):
    """A layer cannot be written in the requested format."""
