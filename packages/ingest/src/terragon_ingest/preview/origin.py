"""Session origins (CONTRACT §5): each preview session is served from an origin of its own.

`TERRAGON_PREVIEW_ORIGIN` is a template with `{previewSessionId}` in the host, e.g.
`https://{previewSessionId}.preview.example.com`. Unset, it is
`http://{previewSessionId}.preview.localhost:<port>` where `<port>` is the port the request
arrived on (the server's own), so `terragon up --port N` needs no setting.

`OriginTemplate.session_in(host, port)` reads a `Host` header: `None` when the host is not in
the preview namespace (the API as usual), else the text in the placeholder's place, which the
caller must still find to be a live session (anything else answers 404). A session id never
comes from anywhere but a Host that matches the template.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from terragon_core import PREVIEW_DEFAULT_ORIGIN, PREVIEW_SESSION_ID_PLACEHOLDER
from terragon_ingest.errors import IngestError

if TYPE_CHECKING:
    from terragon_ingest.settings import Settings

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_SENTINEL: Final = "terragonsessionplaceholder"
_HOST_TEXT: Final = re.compile(r"^[a-z0-9.-]*$")
SESSION_ID: Final = re.compile(r"^[0-9a-f]{32}$")
"""The shape of a preview session id (`secrets.token_hex(16)`); nothing else is looked up."""


class OriginTemplateError(IngestError):
    """`TERRAGON_PREVIEW_ORIGIN` is not a usable template."""


@dataclass(frozen=True, slots=True)
class OriginTemplate:
    scheme: str
    prefix: str
    """Host text before the session id (lowercase)."""
    suffix: str
    """Host text after it (lowercase)."""
    port: int | None
    """`None`: the port the request arrived on (the default template)."""
    explicit_port: bool

    @classmethod
    def parse(cls, template: str | None) -> OriginTemplate:
        """The template of `TERRAGON_PREVIEW_ORIGIN`, or the default when unset."""
        if template is None:
            return cls.parse(PREVIEW_DEFAULT_ORIGIN)._with_request_port()
        raw = template.strip()
        if raw.count(PREVIEW_SESSION_ID_PLACEHOLDER) != 1:
            raise OriginTemplateError(
                f"TERRAGON_PREVIEW_ORIGIN must hold {PREVIEW_SESSION_ID_PLACEHOLDER} exactly once "
                f"in its host, got {template!r}"
            )
        parts = urlsplit(raw.replace(PREVIEW_SESSION_ID_PLACEHOLDER, _SENTINEL))
        host = parts.hostname or ""
        if (
            parts.scheme not in _DEFAULT_PORTS
            or _SENTINEL not in host
            or parts.username is not None
            or parts.path not in {"", "/"}
            or parts.query
            or parts.fragment
            or not _HOST_TEXT.match(host.replace(_SENTINEL, ""))
        ):
            raise OriginTemplateError(
                "TERRAGON_PREVIEW_ORIGIN must be http(s)://host[:port] with "
                f"{PREVIEW_SESSION_ID_PLACEHOLDER} in the host and nothing after it, got {template!r}"
            )
        prefix, suffix = host.split(_SENTINEL)
        try:
            port = parts.port
        except ValueError as exc:
            raise OriginTemplateError(f"TERRAGON_PREVIEW_ORIGIN has a bad port: {exc}") from None
        explicit = port is not None
        return cls(parts.scheme, prefix, suffix, port or _DEFAULT_PORTS[parts.scheme], explicit)

    def _with_request_port(self) -> OriginTemplate:
        return OriginTemplate(self.scheme, self.prefix, self.suffix, None, True)

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    def _port(self, server_port: int | None) -> int:
        return self.port if self.port is not None else (server_port or _DEFAULT_PORTS[self.scheme])

    def text(self, server_port: int | None = None) -> str:
        """The template as a URL with `{previewSessionId}` left in (for banners and docs)."""
        if self.port is None and server_port is None:
            return self.url(PREVIEW_SESSION_ID_PLACEHOLDER, 80) + ":<port>"
        return self.url(PREVIEW_SESSION_ID_PLACEHOLDER, server_port)

    def url(self, session_id: str, server_port: int | None) -> str:
        """The session's origin (`previewUrl`): no trailing slash."""
        port = self._port(server_port)
        show_port = self.explicit_port and port != _DEFAULT_PORTS[self.scheme]
        return f"{self.scheme}://{self.prefix}{session_id}{self.suffix}" + (
            f":{port}" if show_port else ""
        )

    def session_in(self, host_header: str | None, server_port: int | None) -> str | None:
        """The session part of a `Host` in the preview namespace; `None` for any other host."""
        if not host_header:
            return None
        host = host_header.strip().lower()
        if host.startswith("["):  # an IPv6 literal is never a session origin
            return None
        name, sep, port_text = host.rpartition(":")
        if not sep:
            name, port_text = host, ""
        if port_text and not port_text.isdigit():
            return None
        port = int(port_text) if port_text else _DEFAULT_PORTS[self.scheme]
        if port != self._port(server_port):
            return None
        if len(name) <= len(self.prefix) + len(self.suffix):
            return None
        if not (name.startswith(self.prefix) and name.endswith(self.suffix)):
            return None
        return name[len(self.prefix) : len(name) - len(self.suffix)]


def check_api_outside_namespace(template: OriginTemplate, public_url: str | None) -> None:
    """Refuse a template under which the API's own host would be a (404) session origin."""
    if not public_url:
        return
    parts = urlsplit(public_url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    port = int(netloc.rpartition(":")[2]) if netloc.rpartition(":")[2].isdigit() else None
    if template.session_in(netloc, port) is not None:
        raise OriginTemplateError(
            f"TERRAGON_PREVIEW_ORIGIN {template.text()} covers the API's own host "
            f"({public_url}); give previews a namespace of their own (e.g. *.preview.<domain>)"
        )


def for_this_machine(settings: Settings) -> Settings:
    """`terragon up`: sandboxes run on this machine, so private upstreams are allowed unless
    `TERRAGON_PREVIEW_ALLOW_PRIVATE_UPSTREAM` is set (then it decides)."""
    if settings.preview.ALLOW_PRIVATE_UPSTREAM_GIVEN:
        return settings
    preview = dataclasses.replace(settings.preview, ALLOW_PRIVATE_UPSTREAM=True)
    return dataclasses.replace(settings, preview=preview)


def banner(settings: Settings, port: int) -> str:
    """The `up` banner line: where previews are served and what private upstreams may do."""
    text = OriginTemplate.parse(settings.preview.ORIGIN).text(port)
    private = "allowed" if settings.preview.ALLOW_PRIVATE_UPSTREAM else "refused"
    return (
        f"{text}   (private upstreams {private}; open {{previewUrl}}/__terragon/exchange?token=…)"
    )
