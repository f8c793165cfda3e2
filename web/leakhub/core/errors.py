"""One error hierarchy for every layer (issue 16).

    LeakhubError            something the caller must read; never a stack trace
    ├── Invalid      422    bad input; `errors` maps a field ("" = the whole input) to a message
    ├── Conflict     409    the state does not allow it (exists already, changed meanwhile, busy)
    ├── Forbidden    403    the caller may not do this
    ├── NotFound     404    no such thing (for this caller)
    └── Unavailable  503    a dependency is down (Keycloak, the database, a service)

Feature errors subclass the one that fits (UserError → Invalid, KeycloakUnreachable →
Unavailable, ...). Each surface maps them in ONE place: HTML pages (core.web), RFC 9457
problems (the API's problem builder) and leakctl exit codes (the root cli: one line
`leakctl: error: <message>` and `exit_code`). `status` and `exit_code` are class attributes,
stable per class; `str(err)` is the message for the user or operator.

leakctl exits 1 for every known failure (2 is click's usage error): the codes stay 1 so
scripts that call leakctl see what they saw before the hierarchy existed.
"""
from __future__ import annotations


class LeakhubError(Exception):
    """A failure with a message meant for the user or operator (no secrets, one line)."""

    status: int = 500
    exit_code: int = 1
    title: str = "Internal error"


class Invalid(LeakhubError):
    """Bad input. `errors` maps a field name (or "" for the whole input) to a message.

    Invalid("message"), Invalid("message", "field") or Invalid({"field": "message", ...}).
    """

    status = 422
    title = "Unprocessable"

    def __init__(self, errors: dict[str, str] | str | None = None, field: str | None = None):
        if errors is None:
            errors = {}
        elif not isinstance(errors, (dict, list, tuple)):
            errors = {field or "": errors}
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" if k else v for k, v in self.errors.items()))


class Conflict(LeakhubError):
    """The current state does not allow it: exists already, changed meanwhile, busy."""

    status = 409
    title = "Conflict"


class Forbidden(LeakhubError):
    """The caller may not do this."""

    status = 403
    title = "Forbidden"


class NotFound(LeakhubError):
    """No such thing, as far as this caller can tell."""

    status = 404
    title = "Not found"


class Unavailable(LeakhubError):
    """A dependency is down or did not answer (Keycloak, the database, a service)."""

    status = 503
    title = "Service unavailable"


def status_of(exc: BaseException, default: int = 500) -> int:
    """The HTTP status for any exception: a LeakhubError's class status, else `default`.
    Read from the class: KeycloakError keeps Keycloak's own answer in its instance `status`."""
    if isinstance(exc, LeakhubError):
        status = getattr(type(exc), "status", default)
        return status if isinstance(status, int) else default
    return default
