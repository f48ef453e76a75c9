"""The proxy's URL builder (raw, still percent-encoded paths, as the browser sent them): what
stays on the session's origin and what is refused; and the upstream origin's validation."""

from __future__ import annotations

import pytest

from terragon_core import SecurityReason
from terragon_ingest.errors import InvalidRequest
from terragon_ingest.preview.proxy import ProxyRefused, upstream_url
from terragon_ingest.preview.sessions import normalize_origin

ORIGIN = "http://127.0.0.1:5173"


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/", "", "http://127.0.0.1:5173/"),
        ("/src/App.tsx", "t=1", "http://127.0.0.1:5173/src/App.tsx?t=1"),
        ("/a%20b/%C3%A9", "", "http://127.0.0.1:5173/a%20b/%C3%A9"),  # kept as sent
        ("/a%2Fb", "", "http://127.0.0.1:5173/a%2Fb"),  # an encoded slash stays encoded
        ("/a b", "", "http://127.0.0.1:5173/a%20b"),  # a raw space is encoded
        ("/@evil.com", "", "http://127.0.0.1:5173/@evil.com"),
    ],
)
def test_paths_stay_on_the_origin(path: str, query: str, expected: str) -> None:
    assert str(upstream_url(ORIGIN, path, query)) == expected


@pytest.mark.parametrize(
    "path",
    [
        "//evil.com/x",
        "/http://evil.com/",
        "/javascript:alert(1)",
        "/../etc/passwd",
        "/a/../../b",
        "/./a",
        "/a\\..\\b",
        "/a\x00b",
        "/a/%2e%2e/b",  # double-encoded dots
        "/%2E.",
    ],
)
def test_traversal_and_absolute_urls_are_path_denied(path: str) -> None:
    with pytest.raises(ProxyRefused) as refused:
        upstream_url(ORIGIN, path, "")
    assert refused.value.reason is SecurityReason.PROXY_PATH_DENIED


def test_a_url_that_leaves_the_origin_is_ssrf_blocked() -> None:
    # The builder never produces one from a path; an origin that is not bare would.
    with pytest.raises(ProxyRefused) as refused:
        upstream_url("http://127.0.0.1:5173@evil.com", "/x", "")
    assert refused.value.reason is SecurityReason.PROXY_SSRF_BLOCKED


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
        ("https://preview.example.com/", "https://preview.example.com"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_origins_are_normalized(raw: str, expected: str) -> None:
    assert normalize_origin(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "ftp://h",
        "http://u:p@h",
        "http://:p@h",
        "http://h/p",
        "http://h#f",
        "h",
        "http://h:99999",  # was a 500 (ValueError from urlsplit().port)
        "http://h:0",
        "http://%31%32%37.0.0.1",
        "http://ex ample.com",
    ],
)
def test_origins_with_more_than_an_origin_are_refused(raw: str) -> None:
    with pytest.raises(InvalidRequest):
        normalize_origin(raw)
