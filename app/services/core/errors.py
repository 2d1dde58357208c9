"""Service errors, mapped to HTTP status codes in app/errors.py (one place)."""


class ServiceError(Exception):
    """Base: a use-case refused the request with a message for the user."""

    status = 400


class ValidationError(ServiceError):
    """Input is malformed; the message names the row, field or value."""

    status = 400


class NotFoundError(ServiceError):
    """The object does not exist, or the user may not know that it exists."""

    status = 404


class ForbiddenError(ServiceError):
    """The user may see the object but not do this to it."""

    status = 403


class ConflictError(ServiceError):
    """Someone else changed the object first (optimistic locking) or it is in the wrong state."""

    status = 409


class NoActiveGridError(NotFoundError):
    """No grid layer is active yet: build or import one and activate it (网格管理)."""

    def __init__(self, msg: str = "没有启用的网格图层，请先在“网格管理”中生成并启用网格") -> None:
        super().__init__(msg)
