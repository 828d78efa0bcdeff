"""The GitHub webhook receiver: a small Starlette (ASGI) app, served by uvicorn.

    POST /webhooks/github/{tenant}   verify, de-duplicate, store in the inbox, then answer
    GET  /healthz                    200 when the inbox can be read, 503 otherwise

Answers to a delivery, in the order they are decided:

    413  body over `max_body_bytes` (counted while it streams in; never held whole in memory)
    404  no webhook secret for this tenant (the same answer whether or not the tenant exists)
    401  X-Hub-Signature-256 missing or wrong
    400  no X-GitHub-Delivery or X-GitHub-Event header, or the body carries no JSON object
    200  {"status": "pong"}        a `ping` event; nothing stored
    202  {"status": "accepted"}    stored and committed to disk
    200  {"status": "duplicate"}   this delivery id was stored before; nothing changed
    503  the secret source or the inbox failed; GitHub shows the failure and it can be redelivered

Blocking work (secret lookup, SQLite) runs in the thread pool so the event loop keeps taking
deliveries. The secret and the signature are never logged or echoed.
"""

from __future__ import annotations

import logging
import re

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from integrations.errors import ConfigError, IntegrationsError, RecordError, StoreError
from integrations.webhooks._inbox import Inbox
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
    def __init__(self, inbox: Inbox, secret_lookup: SecretLookup, max_body_bytes: int) -> None:
        self.inbox = inbox
        self.secret_lookup = secret_lookup
        self.max_body_bytes = max_body_bytes

    async def github(self, request: Request) -> JSONResponse:
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
            secret = await run_in_threadpool(self.secret_lookup, tenant)
        except IntegrationsError as err:  # the project's errors never carry secret values
            log.error("tenant %s: webhook secret lookup failed: %s", tenant, err)
            return _answer(503, error="webhook secret unavailable")
        except Exception as err:  # anything else might: name its type only
            log.error("tenant %s: webhook secret lookup failed (%s)", tenant, type(err).__name__)
            return _answer(503, error="webhook secret unavailable")
        if not secret:
            return _answer(404, error="not found")

        headers = request.headers
        delivery_id = headers.get("x-github-delivery", "").strip()
        if not verify_signature(secret, body, headers.get(SIGNATURE_HEADER)):
            log.warning("tenant %s: delivery %r refused: %s missing or wrong", tenant, delivery_id[:64],
                        SIGNATURE_HEADER)
            return _answer(401, error=f"{SIGNATURE_HEADER} missing or wrong")
        event_name = headers.get("x-github-event", "").strip()
        if not delivery_id or len(delivery_id) > 128:
            return _answer(400, error="missing or malformed X-GitHub-Delivery header")
        if not event_name:
            return _answer(400, error="missing X-GitHub-Event header")
        if event_name == "ping":
            log.info("tenant %s: ping (hook %s)", tenant, headers.get("x-github-hook-id"))
            return _answer(200, status="pong")

        try:
            added = await run_in_threadpool(self.inbox.add, tenant, delivery_id, headers, body)
        except RecordError as err:
            return _answer(400, error=err.message)
        except StoreError as err:
            log.error("tenant %s: delivery %s not stored: %s", tenant, delivery_id, err)
            return _answer(503, error="inbox unavailable")
        if not added:
            log.info("tenant %s: delivery %s (%s) was already stored", tenant, delivery_id, event_name)
            return _answer(200, status="duplicate", delivery=delivery_id)
        log.info("tenant %s: delivery %s (%s) stored", tenant, delivery_id, event_name)
        return _answer(202, status="accepted", delivery=delivery_id)

    async def healthz(self, request: Request) -> JSONResponse:
        try:
            await run_in_threadpool(self.inbox.check)
        except StoreError as err:
            log.error("health check: %s", err)
            return _answer(503, status="unavailable", inbox="unreachable")
        return _answer(200, status="ok", inbox="ok")


def create_app(inbox: Inbox, secret_lookup: SecretLookup, *,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Starlette:
    """The receiver as an ASGI app, storing into `inbox` and verifying with `secret_lookup`."""
    if max_body_bytes < 1:
        raise ConfigError(f"max_body_bytes must be positive, got {max_body_bytes}", field="max_body_bytes")
    receiver = _Receiver(inbox, secret_lookup, max_body_bytes)
    app = Starlette(
        routes=[
            Route("/webhooks/github/{tenant}", receiver.github, methods=["POST"]),
            Route("/healthz", receiver.healthz, methods=["GET"]),
        ],
        exception_handlers={404: _not_found},  # a path no route matches answers like an unknown tenant
    )
    app.state.inbox = inbox
    return app
