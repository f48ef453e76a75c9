"""Session-origin pieces without a server: the `TERRAGON_PREVIEW_ORIGIN` template (parse, match a
Host, build `previewUrl`), the cookie and Fetch Metadata rules, header hygiene, address checks
and the pinned upstream request."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from terragon_core import SecurityReason
from terragon_ingest.preview.addresses import UpstreamRefused, checked_addresses, is_public
from terragon_ingest.preview.cookie import cookie_values, cross_site_refusal, set_cookie
from terragon_ingest.preview.origin import (
    OriginTemplate,
    OriginTemplateError,
    check_api_outside_namespace,
)
from terragon_ingest.preview.proxy import pinned_request, request_headers, response_headers

SID = "0123456789abcdef0123456789abcdef"


def test_the_default_template_uses_the_servers_port() -> None:
    default = OriginTemplate.parse(None)
    assert default.text() == "http://{previewSessionId}.preview.localhost:<port>"
    assert default.text(8000) == "http://{previewSessionId}.preview.localhost:8000"
    assert default.url(SID, 8123) == f"http://{SID}.preview.localhost:8123"
    assert default.session_in(f"{SID}.preview.localhost:8123", 8123) == SID
    assert default.session_in(f"{SID}.Preview.LOCALHOST:8123", 8123) == SID.lower()
    assert default.session_in(f"{SID}.preview.localhost:9999", 8123) is None  # another port
    assert default.session_in(f"{SID}.preview.localhost", 8123) is None
    assert default.session_in("127.0.0.1:8123", 8123) is None  # the API
    assert default.session_in("preview.localhost:8123", 8123) is None
    assert default.session_in("[::1]:8123", 8123) is None
    assert default.session_in(None, 8123) is None
    # In the namespace but not a session id: the caller answers 404.
    assert default.session_in("a.b.preview.localhost:8123", 8123) == "a.b"
    assert not default.secure


@pytest.mark.parametrize(
    ("template", "host", "expected", "url"),
    [
        (
            "https://{previewSessionId}.preview.example.com",
            f"{SID}.preview.example.com",
            SID,
            f"https://{SID}.preview.example.com",
        ),
        (
            "https://{previewSessionId}.preview.example.com",
            f"{SID}.preview.example.com:443",
            SID,
            f"https://{SID}.preview.example.com",
        ),
        (
            "https://p-{previewSessionId}.example.com:8443/",
            f"p-{SID}.example.com:8443",
            SID,
            f"https://p-{SID}.example.com:8443",
        ),
        ("https://{previewSessionId}.preview.example.com", "api.example.com", None, None),
        ("https://{previewSessionId}.preview.example.com", f"{SID}.example.com", None, None),
    ],
)
def test_templates_match_their_hosts(template: str, host: str, expected, url) -> None:
    parsed = OriginTemplate.parse(template)
    assert parsed.session_in(host, 8000) == expected
    if url:
        assert parsed.url(SID, 8000) == url
        assert parsed.secure


@pytest.mark.parametrize(
    "template",
    [
        "https://preview.example.com",  # no placeholder
        "https://{previewSessionId}.{previewSessionId}.example.com",
        "https://example.com/{previewSessionId}",  # in the path, not the host
        "ftp://{previewSessionId}.example.com",
        "https://{previewSessionId}.example.com/app",
        "https://{previewSessionId}.example.com?x=1",
        "https://u:p@{previewSessionId}.example.com",
        "https://{previewSessionId}.exa_mple.com",
        "https://{previewSessionId}.example.com:99999",
    ],
)
def test_bad_templates_are_refused_at_start(template: str) -> None:
    with pytest.raises(OriginTemplateError):
        OriginTemplate.parse(template)


def test_a_template_that_covers_the_api_host_is_refused() -> None:
    wide = OriginTemplate.parse("https://{previewSessionId}.example.com")
    with pytest.raises(OriginTemplateError, match="covers the API"):
        check_api_outside_namespace(wide, "https://api.example.com")
    check_api_outside_namespace(OriginTemplate.parse(None), "http://127.0.0.1:8000")


def test_the_cookie_is_exactly_the_contracts() -> None:
    assert set_cookie("t", secure=False) == (
        "terragon_preview=t; Max-Age=1800; Path=/; HttpOnly; SameSite=Lax"
    )
    assert set_cookie("t", secure=True) == (
        "__Host-terragon_preview=t; Max-Age=1800; Path=/; HttpOnly; SameSite=Lax; Secure"
    )
    headers = ["a=1; terragon_preview=x; terragon_preview=y", "terragon_preview=z"]
    assert cookie_values(headers, secure=False) == ["x", "y", "z"]
    assert cookie_values(headers, secure=True) == []  # on https only the __Host- name is read
    assert cookie_values(["__Host-terragon_preview=h; terragon_preview=x"], secure=True) == ["h"]
    assert cookie_values(["terragon_preview="] + ["terragon_preview=v"] * 10, secure=False) == ["v"]
    many = "; ".join(f"terragon_preview=v{n}" for n in range(100))
    assert cookie_values([many], secure=False) == [f"v{n}" for n in range(32)]


@pytest.mark.parametrize(
    ("method", "site", "mode", "dest", "allowed"),
    [
        ("GET", None, None, None, True),  # a program (curl), an older browser
        ("POST", "same-origin", "cors", "empty", True),  # the page's own fetch
        ("GET", "none", "navigate", "document", True),  # typed in the address bar
        ("GET", "cross-site", "navigate", "document", True),  # the platform links to exchange
        ("GET", "same-site", "navigate", "iframe", True),
        ("GET", "same-site", "cors", "empty", False),  # another preview's fetch
        ("GET", "same-site", "no-cors", "script", False),  # <script src> from another preview
        ("POST", "cross-site", "navigate", "document", False),  # a cross-site form post
        ("GET", "same-site", "navigate", "embed", False),
    ],
)
def test_fetch_metadata_policy(method, site, mode, dest, allowed: bool) -> None:
    assert (cross_site_refusal(method, site, mode, dest) is None) is allowed


def test_request_headers_drop_credentials_and_hop_by_hop() -> None:
    sent = request_headers(
        [
            ("Host", "sid.preview.localhost:8000"),
            ("Authorization", "Bearer x"),
            ("Cookie", "terragon_preview=t; other=1"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "1"),
            ("Upgrade", "h2c"),
            ("x-proxy-req-id", "spoof"),
            ("Accept", "text/html"),
        ],
        "rid",
        "127.0.0.1:5173",
    )
    assert sent == [("host", "127.0.0.1:5173"), ("Accept", "text/html"), ("x-proxy-req-id", "rid")]


def test_response_headers_drop_what_reaches_beyond_the_page() -> None:
    received = response_headers(
        [
            ("Set-Cookie", "a=1"),
            ("Service-Worker-Allowed", "/"),
            ("Clear-Site-Data", '"*"'),
            ("Access-Control-Allow-Credentials", "true"),
            ("Cross-Origin-Resource-Policy", "cross-origin"),
            ("Vary", "Accept"),
            ("Vary", "Origin"),
            ("Content-Length", "10"),
        ],
        "rid",
    )
    assert received == {
        "vary": "Accept, Origin",
        "cross-origin-resource-policy": "same-origin",
        "x-proxy-req-id": "rid",
    }


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # CGNAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:169.254.169.254", False),
    ],
)
def test_only_global_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


async def test_names_are_resolved_and_every_address_checked() -> None:
    with pytest.raises(UpstreamRefused) as refused:
        await checked_addresses("localhost", 80, allow_private=False)
    assert refused.value.reason is SecurityReason.PROXY_SSRF_BLOCKED
    with pytest.raises(UpstreamRefused):
        await checked_addresses(
            "0x7f.1", 80, allow_private=False
        )  # inet_aton spelling of 127.0.0.1
    assert await checked_addresses("93.184.216.34", 80, allow_private=False) == ["93.184.216.34"]
    assert await checked_addresses("localhost", 80, allow_private=True) is None


async def test_a_pinned_request_goes_to_the_checked_address_with_the_name_in_host_and_sni() -> None:
    async with httpx.AsyncClient() as http:
        request = pinned_request(
            http,
            "GET",
            httpx.URL("https://preview.example.com:8443/a?b=1"),
            [("host", "preview.example.com:8443")],
            None,
            "93.184.216.34",
        )
    assert str(request.url) == "https://93.184.216.34:8443/a?b=1"
    assert request.headers["host"] == "preview.example.com:8443"
    assert request.extensions["sni_hostname"] == "preview.example.com"
