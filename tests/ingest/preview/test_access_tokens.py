"""Preview token keys: per-audience keys, kid rotation, and the GitHub signature check."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

import pytest

from terragon_core import PreviewTokenAudience, SecurityReason
from terragon_ingest.access.service import verify_signature
from terragon_ingest.preview.tokens import PreviewKeyring, TokenRejected
from terragon_ingest.settings import PreviewSettings


def _keyring(kid: str = "k2", previous: str | None = "k1") -> PreviewKeyring:
    settings = dataclasses.replace(PreviewSettings(), KID=kid, PREVIOUS_KID=previous)
    return PreviewKeyring.from_settings("secret", settings)


def _mint(keyring: PreviewKeyring, audience: PreviewTokenAudience) -> str:
    return keyring.mint(
        audience, user_id="u", session_id="s", revocation_version=1, ttl_seconds=60, nonce=True
    ).token


def test_tokens_of_the_previous_kid_verify_during_rotation() -> None:
    old = _keyring(kid="k1", previous=None)
    token = _mint(old, PreviewTokenAudience.COOKIE)
    assert _keyring().verify(PreviewTokenAudience.COOKIE, token)["sid"] == "s"
    with pytest.raises(TokenRejected) as rejected:
        _keyring(kid="k3", previous="k2").verify(PreviewTokenAudience.COOKIE, token)
    assert rejected.value.reason is SecurityReason.SIGNATURE_MISMATCH


def test_a_token_never_verifies_for_another_audience() -> None:
    keyring = _keyring()
    token = _mint(keyring, PreviewTokenAudience.COOKIE)
    for audience in (PreviewTokenAudience.EXCHANGE, PreviewTokenAudience.BROADCAST):
        with pytest.raises(TokenRejected) as rejected:
            keyring.verify(audience, token)
        assert rejected.value.reason is SecurityReason.SIGNATURE_MISMATCH
    assert keyring.key(PreviewTokenAudience.COOKIE, "k2") != keyring.key(
        PreviewTokenAudience.EXCHANGE, "k2"
    )


def test_garbage_is_a_signature_mismatch() -> None:
    with pytest.raises(TokenRejected) as rejected:
        _keyring().verify(PreviewTokenAudience.EXCHANGE, "not-a-jwt")
    assert rejected.value.reason is SecurityReason.SIGNATURE_MISMATCH


def test_github_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"action":"added"}'
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert verify_signature("s3cret", body, good)
    assert not verify_signature("s3cret", body + b" ", good)
    assert not verify_signature("other", body, good)
    assert not verify_signature("s3cret", body, None)
    assert not verify_signature("s3cret", body, good.replace("sha256=", "sha1="))
