"""`integrations webhooks serve`: run the GitHub webhook receiver under uvicorn.

The receiver speaks plain HTTP; in production it sits behind a reverse proxy that terminates TLS.
Each tenant's webhook secret comes from `INTEGRATIONS_WEBHOOK_SECRET_<TENANT>` (upper case, other
characters as `_`), else from a `webhook_secret` credential of plugin `github` in the credential
store (see `credential_store_lookup`). Secrets are never printed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from integrations.cli._common import db_option
from integrations.store import EventStore, default_store_path
from integrations.webhooks import (
    DEFAULT_MAX_BODY_BYTES,
    SECRET_ENV_PREFIX,
    Inbox,
    SecretLookup,
    cached_secret,
    create_app,
    default_inbox_path,
    env_secret_lookup,
    first_secret,
)


@click.group(name="webhooks")
def command() -> None:
    """Serve the webhook receiver."""


WEBHOOK_SECRET_ROLE = "webhook_secret"  # role in a tenant file's `integrations.github.credentials`
DEFAULT_WEBHOOK_SECRET_NAME = "webhook-secret"  # credential name when the tenant file names none


def credential_store_lookup(store: EventStore, *, tenants: Path | None = None,
                            key_file: Path | None = None) -> SecretLookup:
    """Secrets stored as `webhook_secret` credentials of plugin `github` in the credential store.

    The credential's name is the one the tenant file gives the `webhook_secret` role
    (`integrations: {github: {credentials: {webhook_secret: NAME}}}`), else `webhook-secret`.
    Credentials live in the DuckDB event store, whose single writer is the runner: each lookup
    opens a short read-only connection, so `serve` wraps this in `cached_secret` (which also reuses
    the last answer while the runner holds the file).
    """
    from integrations.credentials import CredentialManager, EnvironmentMasterKeys
    from integrations.tenants import load_tenant_config

    manager = CredentialManager(store, EnvironmentMasterKeys(key_file=key_file))

    def lookup(tenant_id: str) -> bytes | None:
        config = load_tenant_config(tenant_id, tenants)
        entry = config.integrations.get("github") if config is not None else None
        named = entry.credentials.get(WEBHOOK_SECRET_ROLE) if entry is not None else None
        name = named or DEFAULT_WEBHOOK_SECRET_NAME
        if manager.info(tenant_id, "github", name) is None:
            return None
        credential = manager.get(tenant_id, "github", name, accepted=("webhook_secret",))
        value = credential.secret.get_secret_value()  # type: ignore[attr-defined]
        return value.encode("utf-8") if value else None

    return lookup


def secret_lookup(store: EventStore | None = None, *, ttl_seconds: float = 60.0, tenants: Path | None = None,
                  key_file: Path | None = None) -> tuple[SecretLookup, list[str]]:
    """The lookup `serve` uses (environment first, then the credential store) and its sources' names."""
    sources: list[tuple[str, SecretLookup]] = [(f"environment ({SECRET_ENV_PREFIX}<TENANT>)", env_secret_lookup())]
    if store is not None:
        sources.append((f"credential store {store.path} (type webhook_secret, plugin github)",
                        cached_secret(credential_store_lookup(store, tenants=tenants, key_file=key_file), ttl_seconds)))
    return first_secret(*(lookup for _name, lookup in sources)), [name for name, _lookup in sources]


@command.command(name="serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; keep the default behind a reverse proxy on the same host.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--inbox", "inbox_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="INTEGRATIONS_WEBHOOK_INBOX", show_envvar=True,
              help="Inbox file [default: data/inbox/github.sqlite].")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_BODY_BYTES, show_default=True,
              help="Larger deliveries are answered 413 (GitHub caps payloads at 25 MB).")
@click.option("--secret-ttl", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds a secret from the credential store is reused before it is read again.")
@click.option("--credential-store/--no-credential-store", default=True, show_default=True,
              help="Also look for `webhook_secret` credentials in the event store's credential table.")
@db_option
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="INTEGRATIONS_MASTER_KEY_FILE", show_envvar=True,
              help="Master key file, used when INTEGRATIONS_MASTER_KEY is unset [default: data/master.key].")
def serve(host: str, port: int, inbox_path: Path | None, max_body_bytes: int, secret_ttl: float,
          credential_store: bool, db: Path | None, key_file: Path | None) -> None:
    """Receive GitHub webhooks at POST /webhooks/github/<tenant> and keep them in the inbox."""
    import uvicorn

    # A short busy timeout: better a 503 GitHub can redeliver than an answer after its 10 seconds.
    inbox = Inbox(inbox_path or default_inbox_path(), busy_timeout=5.0)
    # Reading credentials waits at most 3 s for the runner's lock: the answer must reach GitHub in 10.
    store = EventStore(db or default_store_path(), lock_timeout=3.0) if credential_store else None
    lookup, sources = secret_lookup(store, ttl_seconds=secret_ttl, key_file=key_file)
    app = create_app(inbox, lookup, max_body_bytes=max_body_bytes)

    configured = sum(1 for name, value in os.environ.items() if name.startswith(SECRET_ENV_PREFIX) and value)
    click.echo(f"Receiving GitHub webhooks on http://{host}:{port}/webhooks/github/<tenant>", err=True)
    click.echo(f"  inbox: {inbox.path}", err=True)
    click.echo(f"  secrets from: {'; then '.join(sources)}", err=True)
    click.echo(f"  tenants with a secret in the environment: {configured}", err=True)
    if configured == 0 and store is None:
        click.secho(f"  warning: no {SECRET_ENV_PREFIX}<TENANT> variable is set; every delivery will be "
                    "answered 404", fg="yellow", err=True)

    config = uvicorn.Config(app, host=host, port=port, lifespan="off", server_header=False,
                            log_level=logging.getLogger().getEffectiveLevel(), timeout_graceful_shutdown=10)
    try:
        uvicorn.Server(config).run()
    finally:
        inbox.close()
