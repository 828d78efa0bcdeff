"""GitHub's delivery signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`.

The HMAC is computed over the bytes exactly as they arrived (never over re-encoded JSON or a decoded
form field), and compared in constant time so the answer time says nothing about how many leading
characters of a forged signature were right.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def signature_for(secret: bytes, body: bytes) -> str:
    """The header value GitHub sends for `body` signed with `secret`."""
    return _PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of `body` under `secret`; False when missing or wrong."""
    if not secret or not header:
        return False
    try:
        given = header.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    expected = signature_for(secret, body).encode("ascii")
    return hmac.compare_digest(expected, given)
