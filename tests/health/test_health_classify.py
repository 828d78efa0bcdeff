"""Error classes of real httpx responses and exceptions and real botocore errors; server wait hints."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import boto3
import httpx
import pydantic
import pytest
from botocore import exceptions as boto_exc
from botocore.stub import Stubber

from integrations.errors import MappingError
from integrations.health import (
    CircuitOpenError,
    ErrorClass,
    FakeClock,
    NeedsCredentialsError,
    RequestFailedError,
    classify,
    retry_after_seconds,
    safe_error_message,
)

R, A, P = ErrorClass.RETRYABLE, ErrorClass.AUTH, ErrorClass.PERMANENT
GITHUB = httpx.Request("GET", "https://api.github.com/repos/acme/app/commits")


def response(status: int, headers: dict | None = None, text: str = "") -> httpx.Response:
    return httpx.Response(status, headers=headers or {}, text=text, request=GITHUB)


@pytest.mark.parametrize(("status", "headers", "text", "expected"), [
    (500, {}, "", R), (502, {}, "", R), (503, {}, "", R), (504, {}, "", R),
    (429, {"Retry-After": "3"}, "", R), (429, {}, "", R), (408, {}, "", R),
    (401, {}, '{"message": "Bad credentials"}', A),
    (403, {}, '{"message": "Resource not accessible by integration"}', A),
    (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000000"}, '{"message": "API rate limit exceeded"}', R),
    (403, {"X-RateLimit-Remaining": "4000"}, '{"message": "You have exceeded a secondary rate limit. Please wait"}', R),
    (403, {"Retry-After": "60"}, "", R),
    (400, {}, "", P), (404, {}, '{"message": "Not Found"}', P), (409, {}, "", P), (422, {}, '{"message": "Validation Failed"}', P),
])
def test_http_responses(status: int, headers: dict, text: str, expected: ErrorClass) -> None:
    resp = response(status, headers, text)
    assert classify(resp) is expected
    with pytest.raises(httpx.HTTPStatusError) as info:
        resp.raise_for_status()
    assert classify(info.value) is expected


def test_success_response_is_not_an_error() -> None:
    with pytest.raises(ValueError):
        classify(response(200))


@pytest.mark.parametrize(("exc", "expected"), [
    (httpx.ConnectError("refused", request=GITHUB), R),
    (httpx.ConnectTimeout("slow", request=GITHUB), R),
    (httpx.ReadTimeout("slow", request=GITHUB), R),
    (httpx.PoolTimeout("busy", request=GITHUB), R),
    (httpx.ReadError("reset", request=GITHUB), R),
    (httpx.RemoteProtocolError("peer closed", request=GITHUB), R),
    (httpx.UnsupportedProtocol("ftp", request=GITHUB), P),
    (TimeoutError(), R), (ConnectionResetError(), R), (ConnectionRefusedError(), R),
    (ValueError("bad"), P), (KeyError("x"), P),
    (MappingError("bad mapping"), P),
    (NeedsCredentialsError("acme", "github"), A),
    (CircuitOpenError("acme", "github", retry_in=1.0), R),
])
def test_exceptions(exc: BaseException, expected: ErrorClass) -> None:
    assert classify(exc) is expected


def test_pydantic_validation_error_is_permanent() -> None:
    class Model(pydantic.BaseModel):
        n: int

    with pytest.raises(pydantic.ValidationError) as info:
        Model(n="x")
    assert classify(info.value) is P


def client_error(code: str, status: int, message: str = "msg", headers: dict | None = None) -> boto_exc.ClientError:
    return boto_exc.ClientError(
        {"Error": {"Code": code, "Message": message},
         "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}},
        "GetMetricData")


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("ThrottlingException", 400, R), ("Throttling", 400, R), ("LimitExceededException", 400, R),
    ("RequestLimitExceeded", 503, R), ("TooManyRequestsException", 429, R),
    ("ServiceUnavailable", 503, R), ("InternalFailure", 500, R), ("SomethingNew", 500, R), ("SomethingNew", 429, R),
    ("AccessDenied", 403, A), ("AccessDeniedException", 400, A), ("ExpiredToken", 400, A),
    ("ExpiredTokenException", 400, A), ("UnrecognizedClientException", 400, A), ("InvalidClientTokenId", 403, A),
    ("SignatureDoesNotMatch", 403, A), ("SomethingNew", 401, A),
    ("ValidationException", 400, P), ("InvalidParameterValue", 400, P), ("ResourceNotFoundException", 400, P),
])
def test_botocore_client_errors(code: str, status: int, expected: ErrorClass) -> None:
    assert classify(client_error(code, status)) is expected


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("ThrottlingException", 400, R), ("AccessDeniedException", 400, A), ("InvalidParameterCombination", 400, P)])
def test_botocore_errors_raised_by_a_real_client(code: str, status: int, expected: ErrorClass) -> None:
    client = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")  # noqa: S106 - a stubbed client never sends it
    with Stubber(client) as stub:
        stub.add_client_error("list_metrics", service_error_code=code, service_message="nope",
                              http_status_code=status)
        with pytest.raises(boto_exc.ClientError) as info:
            client.list_metrics()
    assert classify(info.value) is expected


@pytest.mark.parametrize(("exc", "expected"), [
    (boto_exc.EndpointConnectionError(endpoint_url="https://monitoring.us-east-1.amazonaws.com"), R),
    (boto_exc.ConnectTimeoutError(endpoint_url="https://monitoring.us-east-1.amazonaws.com"), R),
    (boto_exc.ReadTimeoutError(endpoint_url="https://monitoring.us-east-1.amazonaws.com"), R),
    (boto_exc.ConnectionClosedError(endpoint_url="https://monitoring.us-east-1.amazonaws.com"), R),
    (boto_exc.NoCredentialsError(), A),
    (boto_exc.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), A),
    (boto_exc.ParamValidationError(report="Invalid type for parameter Namespace"), P),
])
def test_botocore_exceptions(exc: BaseException, expected: ErrorClass) -> None:
    assert classify(exc) is expected


def test_our_wrappers_keep_the_class_of_their_cause() -> None:
    cause = response(404)
    with pytest.raises(httpx.HTTPStatusError) as info:
        cause.raise_for_status()
    assert classify(RequestFailedError("acme", "github", cause=info.value, status=404)) is P


# -- wait hints -------------------------------------------------------------------------------------


def test_retry_after_in_seconds(clock: FakeClock) -> None:
    assert retry_after_seconds(response(429, {"Retry-After": "7"}), clock) == 7.0
    assert retry_after_seconds(response(503, {"Retry-After": "0"}), clock) == 0.0


def test_retry_after_as_http_date(clock: FakeClock) -> None:
    later = format_datetime(clock.wall() + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(response(503, {"Retry-After": later}), clock) == pytest.approx(30.0)
    earlier = format_datetime(clock.wall() - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(response(503, {"Retry-After": earlier}), clock) == 0.0


def test_rate_limit_reset_when_remaining_is_zero(clock: FakeClock) -> None:
    reset = int(clock.wall().timestamp()) + 120
    hint = retry_after_seconds(response(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}), clock)
    assert hint == pytest.approx(120.0)
    assert retry_after_seconds(response(200, {"X-RateLimit-Remaining": "10", "X-RateLimit-Reset": str(reset)}),
                               clock) is None
    # Retry-After wins over the reset time
    both = {"Retry-After": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    assert retry_after_seconds(response(429, both), clock) == 5.0


def test_retry_after_from_exceptions(clock: FakeClock) -> None:
    with pytest.raises(httpx.HTTPStatusError) as info:
        response(429, {"Retry-After": "4"}).raise_for_status()
    assert retry_after_seconds(info.value, clock) == 4.0
    assert retry_after_seconds(client_error("ThrottlingException", 400, headers={"retry-after": "9"}), clock) == 9.0
    assert retry_after_seconds(httpx.ConnectError("refused", request=GITHUB), clock) is None
    assert retry_after_seconds(response(503, {"Retry-After": "soon"}), clock) is None


# -- messages ---------------------------------------------------------------------------------------


def test_messages_never_carry_secrets() -> None:
    token = "ghp_" + "a1B2c3D4e5" * 4
    request = httpx.Request("GET", f"https://user:pw@api.github.com/repos?access_token={token}")
    resp = httpx.Response(401, request=request)
    with pytest.raises(httpx.HTTPStatusError) as info:
        resp.raise_for_status()
    texts = [
        safe_error_message(info.value),
        safe_error_message(resp),
        safe_error_message(httpx.ConnectError(f"failed for {request.url}", request=request)),
        safe_error_message(RuntimeError(f"Authorization: Bearer {token}")),
        safe_error_message(RuntimeError("aws_secret_access_key=abcdEFGH1234/xyz key AKIAABCDEFGHIJKLMNOP")),
        safe_error_message(client_error("AccessDenied", 403, f"token {token} refused")),
    ]
    for text in texts:
        assert token not in text and "AKIAABCDEFGHIJKLMNOP" not in text and "abcdEFGH1234" not in text
        assert "pw@" not in text
    assert texts[0] == "HTTP 401 Unauthorized from GET https://api.github.com/repos"
