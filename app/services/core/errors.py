"""Service errors: one named class per failure, each carrying its HTTP status (app/errors.py answers them)."""

from __future__ import annotations


class ServiceError(Exception):
    """Base: a use-case refused the request with a message for the user."""

    status = 400


class ValidationError(ServiceError):
    """Input is malformed; the message names the row, field or value."""

    status = 400


class FieldError(ValidationError):
    """A parameter or field's value is malformed; ``field`` names it, so clients can highlight it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MediaTypeError(FieldError):
    """The body is not in the format the endpoint takes (e.g. JSON sent as text/plain)."""

    status = 415


class TableRowsError(ValidationError):
    """An uploaded table with row errors, none imported; ``errors`` lists every one.

    The message names the table and shows the first five errors, e.g.
    "别名表有 7 处错误，未导入: 第 3 行: …；…；另有 2 处错误".
    """

    def __init__(self, table: str, errors: list[str], *, outcome: str = "未导入") -> None:
        self.table = table
        self.errors = errors
        shown = "；".join(errors[:5])
        if len(errors) > 5:
            shown += f"；另有 {len(errors) - 5} 处错误"
        super().__init__(f"{table}有 {len(errors)} 处错误，{outcome}: {shown}")


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
