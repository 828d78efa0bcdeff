"""Receiving webhooks: the receiver (an ASGI app: GitHub, AWS EventBridge) and the durable inboxes it fills.

The receiver verifies, de-duplicates and commits each delivery to the inbox before answering;
the runner drains the inbox at least once with `Inbox.drain()`, or through `inbox_reader()`, the
reader the plugin run loop takes (`RunContext.inbox`).
"""

from integrations.webhooks._app import DEFAULT_MAX_BODY_BYTES, create_app
from integrations.webhooks._eventbridge import API_KEY_HEADER, cloudwatch_source
from integrations.webhooks._inbox import (
    DEFAULT_INBOX,
    DEFAULT_KEEP_DRAINED_DAYS,
    RELEVANT_HEADERS,
    Delivery,
    Inbox,
    InboxReader,
    default_inbox_path,
    inbox_path_for,
    inbox_reader,
)
from integrations.webhooks._payload import parse_payload
from integrations.webhooks._secrets import (
    CLOUDWATCH_SECRET_ENV_PREFIX,
    SECRET_ENV_PREFIX,
    SecretLookup,
    cached_secret,
    env_secret_lookup,
    first_secret,
    secret_env_name,
)
from integrations.webhooks._signature import SIGNATURE_HEADER, signature_for, verify_signature

__all__ = [
    "API_KEY_HEADER",
    "CLOUDWATCH_SECRET_ENV_PREFIX",
    "DEFAULT_INBOX",
    "DEFAULT_KEEP_DRAINED_DAYS",
    "DEFAULT_MAX_BODY_BYTES",
    "Delivery",
    "Inbox",
    "InboxReader",
    "RELEVANT_HEADERS",
    "SECRET_ENV_PREFIX",
    "SIGNATURE_HEADER",
    "SecretLookup",
    "cached_secret",
    "cloudwatch_source",
    "create_app",
    "default_inbox_path",
    "env_secret_lookup",
    "first_secret",
    "inbox_path_for",
    "inbox_reader",
    "parse_payload",
    "secret_env_name",
    "signature_for",
    "verify_signature",
]
