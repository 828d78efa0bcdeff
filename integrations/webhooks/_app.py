"""The webhook receiver: a small Starlette (ASGI) app, served by uvicorn.

    POST /webhooks/github/{tenant}       GitHub: verify, de-duplicate, store in the inbox, then answer
    POST /webhooks/cloudwatch/{tenant}   AWS EventBridge (API destination): the same, into the
                                         cloudwatch inbox, filed under the source that reads it
    GET  /healthz                        200 when the inboxes can be read, 503 otherwise

Answers to a delivery, in the order they are decided:

    413  body over `max_body_bytes` (counted while it streams in; never held whole in memory)
    404  no webhook secret for this tenant (the same answer whether or not the tenant exists)
    401  GitHub: X-Hub-Signature-256 missing or wrong; EventBridge: x-api-key missing or wrong
    400  no X-GitHub-Delivery or X-GitHub-Event header, the body carries no JSON object, or
         (EventBridge) an event of a detail-type no source reads
    200  {"status": "pong"}        a GitHub `ping` event; nothing stored
    202  {"status": "accepted"}    stored and committed to disk
    200  {"status": "duplicate"}   this delivery id was stored before; nothing changed
    503  the secret source or the inbox failed; the sender shows the failure and can redeliver

Blocking work (secret lookup, SQLite) runs in the thread pool so the event loop keeps taking
deliveries. Secrets, signatures and API keys are never logged or echoed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from integrations.errors import ConfigError, IntegrationsError, RecordError, StoreError
from integrations.webhooks._eventbridge import API_KEY_HEADER, api_key_matches, cloudwatch_source, delivery_id
from integrations.webhooks._inbox import Inbox
from integrations.webhooks._payload import parse_payload
from integrations.webhooks._secrets import SecretLookup
from integrations.webhooks._signature import SIGNATURE_HEADER, verify_signature

log = logging.getLogger("integrations.webhooks")

DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
# After the limit is passed, up to this much more is read and thrown away before answering 413, so
# the client (which is still sending) reads the answer instead of a connection reset.
_DISCARD_BYTES = 1024 * 1024
_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # the project's tenant ids; anything else is unknown


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or _TooLarge as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if int(declared) <= limit + _DISCARD_BYTES:
            async for _chunk in request.stream():
                pass
        raise _TooLarge
    body = bytearray()
    stream = request.stream()
    async for chunk in stream:
        body += chunk
        if len(body) > limit:
            discarded = 0
            async for rest in stream:
                discarded += len(rest)
                if discarded > _DISCARD_BYTES:
                    break
            raise _TooLarge
    return bytes(body)


def _answer(status_code: int, **content: object) -> JSONResponse:
    return JSONResponse(content, status_code=status_code)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return _answer(404, error="not found")


class _Receiver:
    def __init__(self, inbox: Inbox, secret_lookup: SecretLookup, max_body_bytes: int,
                 aws_inbox: Inbox | None = None, aws_secret_lookup: SecretLookup | None = None) -> None:
        self.inbox = inbox
        self.secret_lookup = secret_lookup
        self.max_body_bytes = max_body_bytes
        self.aws_inbox = aws_inbox
        self.aws_secret_lookup = aws_secret_lookup

    async def _admit(self, request: Request, lookup: SecretLookup) -> JSONResponse | tuple[str, bytes, bytes]:
        """The tenant, its secret and the body; or the answer that turns the delivery away."""
        tenant = request.path_params["tenant"]
        try:
            body = await _read_body(request, self.max_body_bytes)
        except _TooLarge:
            log.warning("tenant %r: delivery over %d bytes refused", tenant[:128], self.max_body_bytes)
            return JSONResponse({"error": "payload too large", "limit_bytes": self.max_body_bytes},
                                status_code=413, headers={"Connection": "close"})
        except ClientDisconnect:
            return _answer(400, error="client disconnected")

        if not _TENANT.fullmatch(tenant):
            return _answer(404, error="not found")
        try:
            secret = await run_in_threadpool(lookup, tenant)
        except IntegrationsError as err:  # the project's errors never carry secret values
            log.error("tenant %s: webhook secret lookup failed: %s", tenant, err)
            return _answer(503, error="webhook secret unavailable")
        except Exception as err:  # anything else might: name its type only
            log.error("tenant %s: webhook secret lookup failed (%s)", tenant, type(err).__name__)
            return _answer(503, error="webhook secret unavailable")
        if not secret:
            return _answer(404, error="not found")
        return tenant, secret, body

    async def _store(self, inbox: Inbox, tenant: str, delivery: str, event_name: str,
                     headers: Mapping[str, str], body: bytes) -> JSONResponse:
        """Commit the delivery to `inbox` (before any answer goes out) and say whether it was new."""
        try:
            added = await run_in_threadpool(lambda: inbox.add(tenant, delivery, headers, body, event_name=event_name))
        except RecordError as err:
            return _answer(400, error=err.message)
        except StoreError as err:
            log.error("tenant %s: delivery %s not stored: %s", tenant, delivery, err)
            return _answer(503, error="inbox unavailable")
        if not added:
            log.info("tenant %s: delivery %s (%s) was already stored", tenant, delivery, event_name)
            return _answer(200, status="duplicate", delivery=delivery)
        log.info("tenant %s: delivery %s (%s) stored", tenant, delivery, event_name)
        return _answer(202, status="accepted", delivery=delivery)

    async def github(self, request: Request) -> JSONResponse:
        admitted = await self._admit(request, self.secret_lookup)
        if isinstance(admitted, JSONResponse):
            return admitted
        tenant, secret, body = admitted
        headers = request.headers
        delivery = headers.get("x-github-delivery", "").strip()
        if not verify_signature(secret, body, headers.get(SIGNATURE_HEADER)):
            log.warning("tenant %s: delivery %r refused: %s missing or wrong", tenant, delivery[:64],
                        SIGNATURE_HEADER)
            return _answer(401, error=f"{SIGNATURE_HEADER} missing or wrong")
        event_name = headers.get("x-github-event", "").strip()
        if not delivery or len(delivery) > 128:
            return _answer(400, error="missing or malformed X-GitHub-Delivery header")
        if not event_name:
            return _answer(400, error="missing X-GitHub-Event header")
        if event_name == "ping":
            log.info("tenant %s: ping (hook %s)", tenant, headers.get("x-github-hook-id"))
            return _answer(200, status="pong")
        return await self._store(self.inbox, tenant, delivery, event_name, headers, body)

    async def cloudwatch(self, request: Request) -> JSONResponse:
        if self.aws_inbox is None or self.aws_secret_lookup is None:
            return _answer(404, error="not found")
        admitted = await self._admit(request, self.aws_secret_lookup)
        if isinstance(admitted, JSONResponse):
            return admitted
        tenant, secret, body = admitted
        if not api_key_matches(secret, request.headers.get(API_KEY_HEADER)):
            log.warning("tenant %s: EventBridge delivery refused: %s missing or wrong", tenant, API_KEY_HEADER)
            return _answer(401, error=f"{API_KEY_HEADER} missing or wrong")
        try:
            payload = parse_payload(body, request.headers.get("content-type"))
            source = cloudwatch_source(payload)
        except RecordError as err:
            log.warning("tenant %s: EventBridge delivery refused: %s", tenant, err.message)
            where = {"field": err.field, "hint": err.hint}
            return _answer(400, error=err.message, **{k: v for k, v in where.items() if v})
        return await self._store(self.aws_inbox, tenant, delivery_id(payload, body), source, request.headers, body)

    async def healthz(self, request: Request) -> JSONResponse:
        try:
            await run_in_threadpool(self.inbox.check)
            if self.aws_inbox is not None:
                await run_in_threadpool(self.aws_inbox.check)
        except StoreError as err:
            log.error("health check: %s", err)
            return _answer(503, status="unavailable", inbox="unreachable")
        return _answer(200, status="ok", inbox="ok")


def create_app(inbox: Inbox, secret_lookup: SecretLookup, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               aws_inbox: Inbox | None = None, aws_secret_lookup: SecretLookup | None = None) -> Starlette:
    """The receiver as an ASGI app: GitHub deliveries into `inbox`, verified with `secret_lookup`;
    with `aws_inbox` and `aws_secret_lookup`, EventBridge deliveries on /webhooks/cloudwatch/ too."""
    if max_body_bytes < 1:
        raise ConfigError(f"max_body_bytes must be positive, got {max_body_bytes}", field="max_body_bytes")
    receiver = _Receiver(inbox, secret_lookup, max_body_bytes, aws_inbox, aws_secret_lookup)
    app = Starlette(
        routes=[
            Route("/webhooks/github/{tenant}", receiver.github, methods=["POST"]),
            Route("/webhooks/cloudwatch/{tenant}", receiver.cloudwatch, methods=["POST"]),
            Route("/healthz", receiver.healthz, methods=["GET"]),
        ],
        exception_handlers={404: _not_found},  # a path no route matches answers like an unknown tenant
    )
    app.state.inbox = inbox
    return app
