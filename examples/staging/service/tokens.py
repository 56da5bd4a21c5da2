"""JWT-like HS256 tokens with the standard library only.

The real system used JWTs signed with a shared secret; reproducing the
"different secret for some token kinds" failure needs real signatures, but a
JWT dependency would be overkill, so this is the minimal HS256 subset.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


class TokenError(ValueError):
    """Raised for any token that must be rejected."""


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, as JWT uses."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url_encode`; tolerant of missing padding."""
    padding = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + padding)


def sign(signing_input: str, secret: str) -> str:
    """HMAC-SHA256 signature of ``header.payload``."""
    digest = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return b64url_encode(digest)


def encode(payload: dict[str, Any], secret: str) -> str:
    """Build ``header.payload.signature``."""
    header = b64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url_encode(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}"
    return f"{signing_input}.{sign(signing_input, secret)}"


def unverified_claims(token: str) -> dict[str, Any]:
    """Read the payload without checking the signature.

    Needed because the service picks the verification secret from the token
    kind -- exactly the step that goes wrong in the buggy revisions.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token")
    try:
        claims = json.loads(b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError("undecodable payload") from exc
    if not isinstance(claims, dict):
        raise TokenError("payload is not an object")
    return claims


def decode(token: str, secret: str, *, now: float | None = None, leeway: float = 5.0) -> dict[str, Any]:
    """Verify signature, algorithm and time claims; return the claims."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token")
    header_b64, payload_b64, signature = parts
    try:
        header = json.loads(b64url_decode(header_b64))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError("undecodable header") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("unsupported algorithm")
    expected = sign(f"{header_b64}.{payload_b64}", secret)
    if not hmac.compare_digest(expected, signature):
        raise TokenError("bad signature")
    claims = unverified_claims(token)
    now = time.time() if now is None else now
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp < now - leeway:
        raise TokenError("expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, (int, float)) and nbf > now + leeway:
        raise TokenError("not yet valid")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise TokenError("missing subject")
    return claims
