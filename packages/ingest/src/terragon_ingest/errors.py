"""Errors of the ingest service. One base; subclasses named by meaning; docstring = default message.

IngestError
├── UserError                    misuse: bad request, unknown id (4xx)
│   ├── NotFound
│   ├── Conflict                 contradicts what is stored (409)
│   ├── UnsupportedProvider
│   └── InvalidRequest
│       └── UnstorableValue      a driver refused a value (its text goes to the log only)
├── RunContextConflict           the pointer moved under us 5 times: nothing written (409)
├── UpstreamFailed               an upstream we call (a sandbox's daemon) failed (502; reason code)
├── ServiceUnavailable           a dependency is down: retry later (503; fixed message + trace id)
│   ├── DatabaseUnavailable
│   ├── CacheUnavailable
│   └── ObjectStoreUnavailable
└── MigrationError               the schema cannot be brought to head
"""

from __future__ import annotations


class IngestError(Exception):
    """Ingest service error."""

    status_code: int = 500

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or _doc(type(self)))

    @property
    def public_message(self) -> str:
        """What the client reads. The message by default (our own words); a class whose message
        carries a driver's text (an outage, an unstorable value) answers its docstring instead,
        and the message goes to the log only."""
        return str(self)


class UserError(IngestError):
    """The request cannot be served as sent."""

    status_code = 400


class InvalidRequest(UserError):
    """The request body is invalid."""


class UnstorableValue(InvalidRequest):
    """A value in the request cannot be stored (a NUL character, a number out of range, or a value
    too large); nothing was written."""

    @property
    def public_message(self) -> str:
        return _doc(UnstorableValue)


class NotFound(UserError):
    """No such resource."""

    status_code = 404


class Conflict(UserError):
    """The request contradicts what is already stored."""

    status_code = 409


class UnsupportedProvider(UserError):
    """This sandbox provider is not supported by this deployment."""

    status_code = 422


class RunContextConflict(IngestError):
    """The run-context pointer kept moving; the run start was not written. Retry the request."""

    status_code = 409


class UpstreamFailed(IngestError):
    """An upstream this service called did not do its part; this service is up (502)."""

    status_code = 502
    reason: str = ""
    """The reason code of the answer (a `terragon_core` enum value)."""
    run_id: str | None = None
    """The run the request minted, when it did."""


class ServiceUnavailable(IngestError):
    """A dependency is unavailable; retry after a short backoff."""

    status_code = 503
    retry_after_seconds: int = 2

    @property
    def public_message(self) -> str:
        return _doc(type(self))


class DatabaseUnavailable(ServiceUnavailable):
    """PostgreSQL is unavailable."""


class CacheUnavailable(ServiceUnavailable):
    """Valkey is unavailable."""


class ObjectStoreUnavailable(ServiceUnavailable):
    """The object store is unavailable."""


class MigrationError(IngestError):
    """The database schema cannot be migrated."""


def _doc(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split())
