"""Which failures are worth retrying: RETRYABLE, AUTH or PERMANENT.

The classes decide everything downstream: only RETRYABLE failures are retried and count against
the breaker; AUTH stops at once and marks the integration `needs_credentials`; PERMANENT means
the request itself is wrong, so retrying it would only repeat the refusal.

    RETRYABLE  timeouts, connection errors, HTTP 408/429/5xx, GitHub's rate-limit 403s,
               AWS throttling codes, botocore connection and read-timeout errors
    AUTH       HTTP 401, other 403s, AWS AccessDenied/ExpiredToken/InvalidClientTokenId...,
               botocore "no credentials" errors
    PERMANENT  everything else: other 4xx, validation errors, unknown exceptions

`retry_after_seconds()` reads the server's own hint (`Retry-After`, or GitHub's
`X-RateLimit-Reset` when `X-RateLimit-Remaining` is 0) so back-off never undercuts it.
`safe_error_message()` is the only text of an error that health figures and dead letters keep.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from botocore import exceptions as botocore_exceptions

from integrations.errors import ConfigError, CredentialError, IntegrationsError, MappingError, RecordError
from integrations.health._clock import Clock


class ErrorClass(str, enum.Enum):
    """What a failure says about retrying it."""

    RETRYABLE = "retryable"
    AUTH = "auth"
    PERMANENT = "permanent"

    def __str__(self) -> str:
        return self.value


AWS_RETRYABLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "TooManyRequestsException", "LimitExceededException", "RequestLimitExceeded", "SlowDown",
    "ProvisionedThroughputExceededException", "BandwidthLimitExceeded", "EC2ThrottledException",
    "PriorRequestNotComplete", "RequestTimeout", "RequestTimeoutException", "InternalError",
    "InternalFailure", "InternalServerError", "InternalServiceError", "ServiceUnavailable",
    "ServiceUnavailableException",
})
AWS_AUTH_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "ExpiredToken", "ExpiredTokenException",
    "UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch", "InvalidAccessKeyId",
    "AuthFailure", "MissingAuthenticationToken", "UnauthorizedOperation", "InvalidToken",
    "NotAuthorized", "TokenRefreshRequired",
})

_BOTO_RETRYABLE = (
    botocore_exceptions.ConnectionError,          # EndpointConnectionError, ConnectTimeoutError, proxy, SSL
    botocore_exceptions.HTTPClientError,          # ReadTimeoutError, ConnectionClosedError, streaming errors
    botocore_exceptions.IncompleteReadError,
)
_BOTO_AUTH = (
    botocore_exceptions.NoCredentialsError, botocore_exceptions.PartialCredentialsError,
    botocore_exceptions.CredentialRetrievalError, botocore_exceptions.NoAuthTokenError,
    botocore_exceptions.TokenRetrievalError, botocore_exceptions.SSOError,
)
_HTTPX_PERMANENT_TRANSPORT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)
_RATE_LIMIT_TEXT = re.compile(r"rate limit|abuse detection", re.IGNORECASE)


def classify(failure: BaseException | httpx.Response) -> ErrorClass:
    """The class of an exception, or of an HTTP error response (status >= 400)."""
    if isinstance(failure, httpx.Response):
        return _classify_response(failure)
    if not isinstance(failure, BaseException):
        raise TypeError(f"classify() takes an exception or an httpx.Response, not {type(failure).__name__}")
    return _classify_exception(failure)


def _classify_exception(exc: BaseException) -> ErrorClass:
    # our own errors first: they already know what they are
    from integrations.health._errors import CircuitOpenError, RequestFailedError, RetriesExhaustedError

    if isinstance(exc, CredentialError):
        return ErrorClass.AUTH
    if isinstance(exc, (CircuitOpenError, RetriesExhaustedError)):
        return ErrorClass.RETRYABLE  # transient by nature; the retry loop itself never retries them
    if isinstance(exc, RequestFailedError):
        return ErrorClass.PERMANENT
    if isinstance(exc, (MappingError, RecordError, ConfigError)):
        return ErrorClass.PERMANENT
    if isinstance(exc, IntegrationsError):
        cause = exc.__cause__
        return _classify_exception(cause) if cause is not None else ErrorClass.PERMANENT

    # httpx
    if isinstance(exc, httpx.HTTPStatusError):
        return _classify_response(exc.response)
    if isinstance(exc, _HTTPX_PERMANENT_TRANSPORT):
        return ErrorClass.PERMANENT
    if isinstance(exc, httpx.TransportError):  # timeouts, connect/read/write errors, remote protocol, proxy
        return ErrorClass.RETRYABLE

    # botocore
    if isinstance(exc, botocore_exceptions.ClientError):
        return _classify_aws(exc.response)
    if isinstance(exc, _BOTO_AUTH):
        return ErrorClass.AUTH
    if isinstance(exc, _BOTO_RETRYABLE):
        return ErrorClass.RETRYABLE

    # the standard library (socket errors, asyncio timeouts)
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return ErrorClass.RETRYABLE
    return ErrorClass.PERMANENT


def _classify_status(status: int, headers: Mapping[str, str], body: str = "") -> ErrorClass:
    if status == 429 or status == 408 or 500 <= status <= 599:
        return ErrorClass.RETRYABLE
    if status == 401:
        return ErrorClass.AUTH
    if status == 403:
        return ErrorClass.RETRYABLE if _is_rate_limited(headers, body) else ErrorClass.AUTH
    if 400 <= status <= 499:
        return ErrorClass.PERMANENT
    raise ValueError(f"HTTP {status} is not an error")


def _classify_response(response: httpx.Response) -> ErrorClass:
    return _classify_status(response.status_code, response.headers, _body_text(response))


def _is_rate_limited(headers: Mapping[str, str], body: str) -> bool:
    """GitHub answers a rate limit with 403: remaining 0, a Retry-After, or a 'secondary rate limit' text."""
    if _header(headers, "x-ratelimit-remaining") == "0" or _header(headers, "retry-after") is not None:
        return True
    return bool(_RATE_LIMIT_TEXT.search(body))


def _classify_aws(response: Mapping[str, Any]) -> ErrorClass:
    code = str((response.get("Error") or {}).get("Code") or "")
    if code in AWS_RETRYABLE_CODES:
        return ErrorClass.RETRYABLE
    if code in AWS_AUTH_CODES:
        return ErrorClass.AUTH
    meta = response.get("ResponseMetadata") or {}
    status = meta.get("HTTPStatusCode")
    if isinstance(status, int) and status >= 400:
        headers = meta.get("HTTPHeaders") or {}
        body = str((response.get("Error") or {}).get("Message") or "")
        return _classify_status(status, headers, body)
    return ErrorClass.PERMANENT


def _body_text(response: httpx.Response) -> str:
    try:
        return response.text[:2000]
    except (httpx.ResponseNotRead, httpx.StreamError, UnicodeDecodeError):
        return ""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name from httpx headers or botocore's lower-cased dict."""
    if isinstance(headers, httpx.Headers):
        return headers.get(name)
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return None


def _headers_of(failure: Any) -> Mapping[str, str] | None:
    if isinstance(failure, httpx.Response):
        return failure.headers
    if isinstance(failure, httpx.HTTPStatusError):
        return failure.response.headers
    if isinstance(failure, botocore_exceptions.ClientError):
        return (failure.response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    if isinstance(failure, BaseException):
        cause = getattr(failure, "__cause__", None)
        if cause is not None and cause is not failure:
            return _headers_of(cause)
    return None


def status_of(failure: Any) -> int | None:
    """The HTTP status behind a response or error, when there is one."""
    if isinstance(failure, httpx.Response):
        return failure.status_code
    if isinstance(failure, httpx.HTTPStatusError):
        return failure.response.status_code
    if isinstance(failure, botocore_exceptions.ClientError):
        status = (failure.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    if isinstance(failure, BaseException):
        if getattr(failure, "status", None) is not None:
            return failure.status  # type: ignore[attr-defined]
        cause = getattr(failure, "__cause__", None)
        if cause is not None and cause is not failure:
            return status_of(cause)
    return None


def retry_after_seconds(failure: BaseException | httpx.Response, clock: Clock) -> float | None:
    """Seconds the server asked us to wait, or None when it gave no hint.

    `Retry-After` wins (delta seconds or an HTTP date); otherwise, when `X-RateLimit-Remaining`
    is 0, the time until `X-RateLimit-Reset` (epoch seconds). Dates in the past give 0.
    """
    headers = _headers_of(failure)
    if not headers:
        return None
    retry_after = _header(headers, "retry-after")
    if retry_after is not None:
        seconds = _parse_retry_after(retry_after.strip(), clock)
        if seconds is not None:
            return seconds
    if _header(headers, "x-ratelimit-remaining") == "0":
        reset = _header(headers, "x-ratelimit-reset")
        try:
            reset_at = float(reset) if reset is not None else None
        except ValueError:
            reset_at = None
        if reset_at is not None:
            return max(0.0, reset_at - clock.wall().timestamp())
    return None


def _parse_retry_after(value: str, clock: Clock) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - clock.wall()).total_seconds())


# -- messages without secrets ------------------------------------------------------------------

_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    # user:password@ in URLs, then query strings (tokens travel there)
    (re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE), r"\g<scheme>"),
    (re.compile(r"(?P<url>[a-z][a-z0-9+.-]*://[^\s?#'\"]+)\?[^\s#'\"]*", re.IGNORECASE), r"\g<url>?[redacted]"),
    (re.compile(r"\b(Bearer|Basic|token)\s+[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE), r"\1 [redacted]"),
    (re.compile(r"(?P<key>(authorization|x-amz-security-token|token|secret|password|passwd|api[_-]?key|"
                r"access[_-]?key(?:[_-]?id)?|signature|credential|client[_-]?secret|private[_-]?key)"
                r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}]+", re.IGNORECASE), r"\g<key>[redacted]"),
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "[redacted]"),
    (re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b"), "[redacted]"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL),
     "[redacted private key]"),
]
MAX_MESSAGE = 400


def redact(text: str) -> str:
    """`text` with URL credentials, query strings, tokens and keys replaced by `[redacted]`."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def safe_error_message(error: BaseException | httpx.Response) -> str:
    """A one-line description of a failure fit for figures, logs and dead letters: never a secret."""
    if isinstance(error, httpx.Response):
        text = _describe_response(error)
    elif isinstance(error, httpx.HTTPStatusError):
        text = _describe_response(error.response)
    elif isinstance(error, httpx.RequestError):
        detail = str(error) or type(error).__name__
        try:
            request = error.request
            text = f"{type(error).__name__} on {request.method} {_url_without_query(request.url)}: {detail}"
        except RuntimeError:  # no request attached
            text = f"{type(error).__name__}: {detail}"
    elif isinstance(error, IntegrationsError):
        text = error.message
    else:
        detail = str(error)
        text = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    text = " ".join(redact(text).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _describe_response(response: httpx.Response) -> str:
    where = ""
    try:
        request = response.request
        where = f" from {request.method} {_url_without_query(request.url)}"
    except RuntimeError:
        pass
    return f"HTTP {response.status_code} {response.reason_phrase}{where}".strip()


def _url_without_query(url: httpx.URL) -> str:
    return str(url.copy_with(query=None, fragment=None, username=None, password=None))


def utc_iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC, or None."""
    return value.astimezone(timezone.utc).isoformat() if value is not None else None
