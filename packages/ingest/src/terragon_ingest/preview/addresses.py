"""Which upstream addresses the preview proxy may reach (the SSRF boundary, CONTRACT §5).

Unless the deployment allows private upstreams (`TERRAGON_PREVIEW_ALLOW_PRIVATE_UPSTREAM`, on for
`terragon up`), an upstream must resolve to global unicast addresses only: loopback, private,
link-local (cloud metadata), CGNAT, unspecified, multicast and reserved ranges are
`proxy_ssrf_blocked`. An IPv6 address that embeds an IPv4 address (`embedded_ipv4`) is judged by
what it embeds, since a translator or tunnel on the path delivers it there: `::ffff:127.0.0.1`,
`::7f00:1`, `64:ff9b::a9fe:a9fe` and `2002:7f00:1::` are refused like `127.0.0.1` and
`169.254.169.254` (Python's `is_global` calls most of these forms global). The check runs at session start and again on every proxied request, and
the proxy then connects to the address it checked (`pinned`), never to a second resolution of
the name: a DNS answer that changes between check and connect (rebinding) cannot reach a
private address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Final

from terragon_core import SecurityReason


class UpstreamRefused(Exception):
    """The upstream may not be reached; `reason` is the `SecurityReason` on the wire."""

    def __init__(self, reason: SecurityReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UpstreamUnresolvable(Exception):
    """The upstream's name does not resolve (a 400 at session start, a 502 when proxying)."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
"""IPv4-compatible `::a.b.c.d` (RFC 4291 §2.5.5.1, deprecated; `::` and `::1` are in it too)."""
_TRANSLATED: Final = ipaddress.IPv6Network("::ffff:0:0:0/96")
"""IPv4-translated `::ffff:0:a.b.c.d` (SIIT, RFC 2765)."""
_NAT64_WELL_KNOWN: Final = ipaddress.IPv6Network("64:ff9b::/96")
"""RFC 6052: the IPv4 address is the last 32 bits."""
_NAT64_LOCAL: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
"""RFC 8215 local-use prefix: the operator picks the prefix length inside it, so the IPv4 address
may sit at any RFC 6052 position from /48 on; every candidate is judged."""
_RFC6052_POSITIONS: Final = {48: 6, 56: 7, 64: 9, 96: 12}
"""Prefix length → first byte of the IPv4 address; its four bytes skip byte 8, the reserved `u`
octet (RFC 6052 §2.2)."""


def _ipv4_at(packed: bytes, prefix_length: int) -> ipaddress.IPv4Address:
    start = _RFC6052_POSITIONS[prefix_length]
    octets = bytes(b for i, b in enumerate(packed[start:], start) if i != 8)[:4]
    return ipaddress.IPv4Address(octets)


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address embeds (none for a plain IPv6 address): IPv4-mapped,
    IPv4-compatible, IPv4-translated, NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`), 6to4
    (`2002::/16`) and Teredo (`2001::/32`: its server and its client)."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    packed = address.packed
    if address in _COMPATIBLE or address in _TRANSLATED or address in _NAT64_WELL_KNOWN:
        return [ipaddress.IPv4Address(packed[12:])]
    if address in _NAT64_LOCAL:
        return [_ipv4_at(packed, length) for length in _RFC6052_POSITIONS]
    return []


def is_public(address: IPAddress) -> bool:
    """Global unicast only. An IPv6 address that embeds IPv4 addresses is public when each of
    them is (so `::ffff:8.8.8.8` is, `64:ff9b::7f00:1` and `2002:a9fe:a9fe::` are not)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded:
            return all(_is_public_unicast(v4) for v4 in embedded)
    return _is_public_unicast(address)


def _is_public_unicast(address: IPAddress) -> bool:
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
