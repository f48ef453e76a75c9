"""Which upstream addresses the preview proxy may reach (the SSRF boundary, CONTRACT §5).

Unless the deployment allows private upstreams (`TERRAGON_PREVIEW_ALLOW_PRIVATE_UPSTREAM`, on for
`terragon up`), an upstream must resolve to global unicast addresses only: loopback, private,
link-local (cloud metadata), CGNAT, unspecified, multicast and reserved ranges are
`proxy_ssrf_blocked`. The check runs at session start and again on every proxied request, and
the proxy then connects to the address it checked (`pinned`), never to a second resolution of
the name: a DNS answer that changes between check and connect (rebinding) cannot reach a
private address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from terragon_core import SecurityReason


class UpstreamRefused(Exception):
    """The upstream may not be reached; `reason` is the `SecurityReason` on the wire."""

    def __init__(self, reason: SecurityReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UpstreamUnresolvable(Exception):
    """The upstream's name does not resolve (a 400 at session start, a 502 when proxying)."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public(address: IPAddress) -> bool:
    """Global unicast only. IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is judged as its IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[str] | None:
    """The addresses to connect to, all checked; `None` when any address is allowed (connect
    by name). Raises `UpstreamRefused` for a blocked address, `UpstreamUnresolvable`."""
    if allow_private:
        return None
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise UpstreamUnresolvable(f"upstream host {host!r} does not resolve: {exc}") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    blocked = [str(a) for a in addresses if not is_public(a)]
    if blocked or not addresses:
        raise UpstreamRefused(
            SecurityReason.PROXY_SSRF_BLOCKED,
            f"upstream {host!r} resolves to a non-public address ({', '.join(blocked)}); "
            "private upstreams need TERRAGON_PREVIEW_ALLOW_PRIVATE_UPSTREAM=true",
        )
    return [str(a) for a in addresses]
