"""Host names and addresses as the service's own operator surfaces judge them (not the preview
proxy's SSRF rules: `preview/addresses.py`)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine's loopback: `localhost`, 127/8,
    `::1`, or an IPv4-mapped form of one."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
