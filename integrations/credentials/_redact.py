"""Keeping secret values out of logs: a process-wide set of known secrets and a masker.

Every secret is registered the moment it is decrypted or received (access tokens, installation
tokens, STS keys), and `install_secret_masking()` replaces the log record factory so any record
whose message or traceback contains one has it replaced by `***` before a handler sees it:
it works for every logger and every handler, including those added later. `SecretMaskingFilter`
does the same for a single handler.

Values not yet registered are caught by their shape: libraries log at DEBUG what they send and
receive (botocore logs STS response bodies before anyone can register the keys inside), so
secret-named XML elements, JSON members, form fields and Authorization headers are masked too.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

from pydantic import SecretBytes, SecretStr

MASK = "***"
# Shorter values would mask ordinary words; no real secret is this short.
MIN_SECRET_LENGTH = 6

_SECRET_NAMES = (r"access_token|refresh_token|id_token|client_secret|private_key|secret|token|password|"
                 r"SecretAccessKey|SessionToken|secret_access_key|session_token|aws_secret_access_key|"
                 r"ExternalId|external_id")
_SHAPES = [
    (re.compile(rf"<({_SECRET_NAMES})>[^<]*</\1>"), rf"<\1>{MASK}</\1>"),
    (re.compile(rf"""(["']({_SECRET_NAMES})["']\s*:\s*b?)(["'])(?:\\.|(?!\3).)*\3""", re.S),
     rf"\1\3{MASK}\3"),
    (re.compile(rf"\b({_SECRET_NAMES})=[^&\s'\"]+"), rf"\1={MASK}"),
    (re.compile(r"(?i)\b(authorization['\"]?\s*[:=]\s*['\"]?(?:bearer|token|basic)\s+)[^\s'\",]+"), rf"\1{MASK}"),
]

_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False


def register_secret(*values: str | SecretStr | SecretBytes | None) -> None:
    """Remember secret values so that `redact()` and the log masker hide them."""
    with _lock:
        for value in values:
            if isinstance(value, (SecretStr, SecretBytes)):
                value = value.get_secret_value()
            if isinstance(value, bytes):
                value = value.decode("utf-8", "ignore")
            if value and len(value) >= MIN_SECRET_LENGTH:
                _secrets.add(value)
                # multi-line secrets (PEM keys) may be logged line by line
                _secrets.update(line for line in value.splitlines() if len(line) >= 16)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every registered (and every given) secret replaced by `***`."""
    with _lock:
        known = set(_secrets)
    known.update(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)
    # longest first, so a secret that contains another is masked whole
    for secret in sorted(known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def _mask_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is logging's problem, not ours
        return
    masked = redact(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        masked = redact(text)
        if masked != text:
            record.exc_text = masked
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class SecretMaskingFilter(logging.Filter):
    """A handler filter that masks registered secrets (when the record factory is not installed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _mask_record(record)
        return True


def install_secret_masking() -> None:
    """Mask registered secrets in every log record of the process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _mask_record(record)
        return record

    logging.setLogRecordFactory(factory)
