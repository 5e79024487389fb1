"""Domain errors. Each has a stable ``code`` (API clients switch on it), a human ``detail`` and
the HTTP status the API and the pages answer with."""

from __future__ import annotations


class DomainError(Exception):
    code = "error"
    status = 400

    def __init__(self, detail: str, *, code: str | None = None, extra: dict | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.extra = extra or {}


class InvalidInput(DomainError):
    code = "invalid"


class InvalidFile(DomainError):
    """The uploaded file is empty, malformed or of an unsupported format."""

    code = "invalid_file"


class InvalidSchema(DomainError):
    code = "invalid_schema"


class FileTooLarge(DomainError):
    code = "file_too_large"
    status = 413


class PermissionDenied(DomainError):
    code = "permission_denied"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class IllegalTransition(DomainError):
    code = "illegal_transition"
    status = 409


class Conflict(DomainError):
    code = "conflict"
    status = 409


class TooManyAttempts(DomainError):
    """Too many failed log-ins for this account or from this address: wait for the cool-off."""

    code = "login_locked"
    status = 429
