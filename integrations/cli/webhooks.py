"""`integrations webhooks serve`: run the webhook receiver (GitHub, AWS EventBridge) under uvicorn.

The receiver speaks plain HTTP; in production it sits behind a reverse proxy that terminates TLS.
Each tenant's GitHub webhook secret comes from `INTEGRATIONS_WEBHOOK_SECRET_<TENANT>` (upper case,
other characters as `_`), else from a `webhook_secret` credential of plugin `github` in the
credential store (see `credential_store_lookup`); its EventBridge API key from
`INTEGRATIONS_CLOUDWATCH_WEBHOOK_SECRET_<TENANT>`, else a `webhook_secret` credential of plugin
`cloudwatch`. Secrets are never printed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from integrations.cli._common import db_option
from integrations.store import EventStore, default_store_path
from integrations.webhooks import (
    CLOUDWATCH_SECRET_ENV_PREFIX,
    DEFAULT_KEEP_DRAINED_DAYS,
    DEFAULT_MAX_BODY_BYTES,
    SECRET_ENV_PREFIX,
    Inbox,
    SecretLookup,
    cached_secret,
    create_app,
    default_inbox_path,
    env_secret_lookup,
    first_secret,
    inbox_path_for,
)


@click.group(name="webhooks")
def command() -> None:
    """Serve the webhook receiver."""


WEBHOOK_SECRET_ROLE = "webhook_secret"  # role in a tenant file's `integrations.<plugin>.credentials`
DEFAULT_WEBHOOK_SECRET_NAME = "webhook-secret"  # credential name when the tenant file names none


def credential_store_lookup(store: EventStore, *, plugin: str = "github", tenants: Path | None = None,
                            key_file: Path | None = None) -> SecretLookup:
    """Secrets stored as `webhook_secret` credentials of `plugin` in the credential store.

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
        entry = config.integrations.get(plugin) if config is not None else None
        named = entry.credentials.get(WEBHOOK_SECRET_ROLE) if entry is not None else None
        name = named or DEFAULT_WEBHOOK_SECRET_NAME
        if manager.info(tenant_id, plugin, name) is None:
            return None
        credential = manager.get(tenant_id, plugin, name, accepted=("webhook_secret",))
        value = credential.secret.get_secret_value()  # type: ignore[attr-defined]
        return value.encode("utf-8") if value else None

    return lookup


_ENV_PREFIXES = {"github": SECRET_ENV_PREFIX, "cloudwatch": CLOUDWATCH_SECRET_ENV_PREFIX}


def secret_lookup(store: EventStore | None = None, *, plugin: str = "github", ttl_seconds: float = 60.0,
                  tenants: Path | None = None, key_file: Path | None = None) -> tuple[SecretLookup, list[str]]:
    """The lookup `serve` uses for `plugin`'s deliveries (environment first, then the credential
    store) and its sources' names."""
    prefix = _ENV_PREFIXES[plugin]
    sources: list[tuple[str, SecretLookup]] = [(f"environment ({prefix}<TENANT>)", env_secret_lookup(prefix=prefix))]
    if store is not None:
        stored = credential_store_lookup(store, plugin=plugin, tenants=tenants, key_file=key_file)
        sources.append((f"credential store {store.path} (type webhook_secret, plugin {plugin})",
                        cached_secret(stored, ttl_seconds)))
    return first_secret(*(lookup for _name, lookup in sources)), [name for name, _lookup in sources]


def inbox_options(func):
    """`--inbox` (GitHub's) and `--cloudwatch-inbox` (EventBridge's), shared by the webhooks commands."""
    func = click.option("--cloudwatch-inbox", "aws_inbox_path", type=click.Path(dir_okay=False, path_type=Path),
                        default=None,
                        help="EventBridge deliveries' inbox file [default: cloudwatch.sqlite beside GitHub's].")(func)
    return click.option("--inbox", "inbox_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        envvar="INTEGRATIONS_WEBHOOK_INBOX", show_envvar=True,
                        help="GitHub's inbox file [default: data/inbox/github.sqlite].")(func)


def _inbox_paths(inbox_path: Path | None, aws_inbox_path: Path | None) -> dict[str, Path]:
    github = inbox_path or default_inbox_path()
    return {"github": github, "cloudwatch": aws_inbox_path or inbox_path_for("cloudwatch", github)}


@command.command(name="serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; keep the default behind a reverse proxy on the same host.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@inbox_options
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
def serve(host: str, port: int, inbox_path: Path | None, aws_inbox_path: Path | None, max_body_bytes: int,
          secret_ttl: float, credential_store: bool, db: Path | None, key_file: Path | None) -> None:
    """Receive GitHub webhooks at POST /webhooks/github/<tenant> and AWS EventBridge events at
    POST /webhooks/cloudwatch/<tenant>, and keep them in the inboxes."""
    import uvicorn

    # A short busy timeout: better a 503 GitHub can redeliver than an answer after its 10 seconds.
    paths = _inbox_paths(inbox_path, aws_inbox_path)
    inbox, aws_inbox = Inbox(paths["github"], busy_timeout=5.0), Inbox(paths["cloudwatch"], busy_timeout=5.0)
    # Reading credentials waits at most 3 s for the runner's lock: the answer must reach GitHub in 10.
    store = EventStore(db or default_store_path(), lock_timeout=3.0) if credential_store else None
    lookup, sources = secret_lookup(store, ttl_seconds=secret_ttl, key_file=key_file)
    aws_lookup, aws_sources = secret_lookup(store, plugin="cloudwatch", ttl_seconds=secret_ttl, key_file=key_file)
    app = create_app(inbox, lookup, max_body_bytes=max_body_bytes, aws_inbox=aws_inbox, aws_secret_lookup=aws_lookup)

    configured = sum(1 for name, value in os.environ.items() if name.startswith(SECRET_ENV_PREFIX) and value)
    click.echo(f"Receiving GitHub webhooks on http://{host}:{port}/webhooks/github/<tenant>", err=True)
    click.echo(f"  inbox: {inbox.path}", err=True)
    click.echo(f"  secrets from: {'; then '.join(sources)}", err=True)
    click.echo(f"  tenants with a secret in the environment: {configured}", err=True)
    click.echo(f"Receiving AWS EventBridge events on http://{host}:{port}/webhooks/cloudwatch/<tenant>", err=True)
    click.echo(f"  inbox: {aws_inbox.path}", err=True)
    click.echo(f"  API keys (header x-api-key) from: {'; then '.join(aws_sources)}", err=True)
    if configured == 0 and store is None:
        click.secho(f"  warning: no {SECRET_ENV_PREFIX}<TENANT> variable is set; every delivery will be "
                    "answered 404", fg="yellow", err=True)

    config = uvicorn.Config(app, host=host, port=port, lifespan="off", server_header=False,
                            log_level=logging.getLogger().getEffectiveLevel(), timeout_graceful_shutdown=10)
    try:
        uvicorn.Server(config).run()
    finally:
        inbox.close()
        aws_inbox.close()


@command.command(name="status")
@inbox_options
@click.option("--tenant", default=None, help="Only this tenant's deliveries.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per tenant and event.")
def status(inbox_path: Path | None, aws_inbox_path: Path | None, tenant: str | None, as_json: bool) -> None:
    """Pending and drained deliveries per tenant and event, in both inboxes.

    A delivery that stays pending is one no `mode: webhook` source of the tenant reads (or the
    runner has not run since): the oldest pending one's arrival time shows which.
    """
    from integrations.cli._common import print_table, write_json_line

    rows: list[dict] = []
    for plugin, path in _inbox_paths(inbox_path, aws_inbox_path).items():
        if not path.exists():
            continue
        with Inbox(path) as inbox:
            rows.extend({"plugin": plugin, **row} for row in inbox.summary(tenant))
    if as_json:
        for row in rows:
            write_json_line(row)
        return
    print_table("Webhook inboxes", ["plugin", "tenant", "event", "pending", "drained", "oldest pending"],
                [[r["plugin"], r["tenant_id"], r["event"], r["pending"], r["drained"], r["oldest_pending"] or ""]
                 for r in rows])


@command.command(name="prune")
@inbox_options
@click.option("--keep-days", type=click.FloatRange(min=3), default=DEFAULT_KEEP_DRAINED_DAYS, show_default=True,
              help="Keep drained deliveries this long (at least 3: GitHub redelivers for 3 days, and a pruned "
                   "delivery id would be accepted again).")
def prune(inbox_path: Path | None, aws_inbox_path: Path | None, keep_days: float) -> None:
    """Delete drained deliveries older than --keep-days from both inboxes; pending ones are never deleted.

    The runner does the same with the default whenever it drains an inbox.
    """
    from datetime import datetime, timedelta, timezone

    cutoff = datetime.now(timezone.utc) - timedelta(days=keep_days)
    for plugin, path in _inbox_paths(inbox_path, aws_inbox_path).items():
        if not path.exists():
            continue
        with Inbox(path) as inbox:
            click.echo(f"{plugin}: {inbox.prune(cutoff)} drained deliveries older than {keep_days:g} days deleted "
                       f"from {path}")
