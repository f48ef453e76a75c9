"""Preview tokens: HS256 JWTs (PyJWT) with `kid`, one key per audience, active + previous kid.

Each audience (`exchange`, `cookie`, `broadcast`) signs with its own key, derived from the kid's
secret: HMAC-SHA256(secret, "{aud}:{kid}"), so a token of one audience never verifies as
another. Verification requires `iss`, `aud`, `sub`, `sid`, `rv`, `iat`, `exp` and `jti`
(and `nonce` for exchange tokens), accepts ±60 s of clock skew and maps every failure to a
`SecurityReason`: `expired` for a past `exp`, `signature_mismatch` for everything else.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jwt

from terragon_core import (
    PREVIEW_EXCHANGE_TOKEN_MAX_TTL_SECONDS,
    PREVIEW_TOKEN_ISSUER,
    PREVIEW_TOKEN_LEEWAY_SECONDS,
    PreviewTokenAudience,
    SecurityReason,
)

if TYPE_CHECKING:
    from terragon_ingest.settings import PreviewSettings

_REQUIRED = ["iss", "aud", "sub", "sid", "rv", "iat", "exp", "jti"]


class TokenRejected(Exception):
    """A preview token failed verification; `reason` says why."""

    def __init__(self, reason: SecurityReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MintedToken:
    token: str
    claims: dict[str, Any]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PreviewKeyring:
    """Signing keys by kid; `active_kid` signs, every kid in `secrets` verifies."""

    active_kid: str
    secrets: dict[str, bytes]

    @classmethod
    def from_settings(cls, signing_secret: str, preview: PreviewSettings) -> PreviewKeyring:
        keys = {preview.KID: signing_secret.encode()}
        if preview.PREVIOUS_KID and preview.PREVIOUS_KID != preview.KID:
            previous = preview.PREVIOUS_SIGNING_SECRET or signing_secret
            keys[preview.PREVIOUS_KID] = previous.encode()
        return cls(active_kid=preview.KID, secrets=keys)

    def key(self, audience: PreviewTokenAudience, kid: str) -> bytes:
        return hmac.new(self.secrets[kid], f"{audience}:{kid}".encode(), hashlib.sha256).digest()

    def mint(
        self,
        audience: PreviewTokenAudience,
        *,
        user_id: str,
        session_id: str,
        revocation_version: int,
        ttl_seconds: int,
        nonce: bool = False,
    ) -> MintedToken:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": PREVIEW_TOKEN_ISSUER,
            "aud": audience.value,
            "sub": user_id,
            "sid": session_id,
            "rv": revocation_version,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": secrets.token_urlsafe(16),
        }
        if nonce:
            claims["nonce"] = secrets.token_urlsafe(16)
        token = jwt.encode(
            claims,
            self.key(audience, self.active_kid),
            algorithm="HS256",
            headers={"kid": self.active_kid},
        )
        return MintedToken(token, claims, datetime.fromtimestamp(now + ttl_seconds, UTC))

    def verify(self, audience: PreviewTokenAudience, token: str) -> dict[str, Any]:
        """The claims of a valid token of `audience`, else `TokenRejected`."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(
                SecurityReason.SIGNATURE_MISMATCH, f"malformed token: {exc}"
            ) from exc
        if not isinstance(kid, str) or kid not in self.secrets:
            raise TokenRejected(SecurityReason.SIGNATURE_MISMATCH, f"unknown kid {kid!r}")
        required = [*_REQUIRED, "nonce"] if audience is PreviewTokenAudience.EXCHANGE else _REQUIRED
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key(audience, kid),
                algorithms=["HS256"],
                audience=audience.value,
                issuer=PREVIEW_TOKEN_ISSUER,
                leeway=PREVIEW_TOKEN_LEEWAY_SECONDS,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected(SecurityReason.EXPIRED, "token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(SecurityReason.SIGNATURE_MISMATCH, f"invalid token: {exc}") from exc
        lifetime = int(claims["exp"]) - int(claims["iat"])
        if (
            audience is PreviewTokenAudience.EXCHANGE
            and lifetime > PREVIEW_EXCHANGE_TOKEN_MAX_TTL_SECONDS
        ):
            raise TokenRejected(
                SecurityReason.SIGNATURE_MISMATCH,
                f"exchange token lives {lifetime} s (max {PREVIEW_EXCHANGE_TOKEN_MAX_TTL_SECONDS})",
            )
        return claims
