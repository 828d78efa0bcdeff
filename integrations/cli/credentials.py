"""`integrations credentials set|list|test|delete|rotate-master|rotate-tenant`.

Secrets come from stdin or a hidden prompt, never from the command line (argv is visible to
every user of the machine and kept in shell history); `--part` takes non-secret parts only.
Nothing here prints a secret: `list` shows metadata, `test` says what it proved.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from integrations.cli._common import db_option, open_store, print_table
from integrations.credentials import (
    CREDENTIAL_TYPES,
    ENV_KEY_FILE,
    CredentialManager,
    EnvironmentMasterKeys,
    authenticate_credential,
    credential_type,
    parse_credential,
)
from integrations.errors import CredentialError, UsageError


def _key_file_option(func):
    return click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        envvar=ENV_KEY_FILE, show_envvar=True,
                        help="Master key file, used when INTEGRATIONS_MASTER_KEY is unset [default: data/master.key].")(func)


def _tenant(func):
    return click.option("--tenant", required=True, envvar="INTEGRATIONS_TENANT", help="Tenant id.")(func)


def _target(func):
    func = click.option("--name", required=True, help="Credential name (a plugin may hold several).")(func)
    return click.option("--plugin", required=True, help="Plugin the credential is for.")(func)


def _manager(db: Path | None, key_file: Path | None, *, create: bool = False,
             old_key_files: tuple[Path, ...] = (), sts_endpoint_url: str | None = None) -> CredentialManager:
    keys = EnvironmentMasterKeys(key_file=key_file, create=create, old_key_files=old_key_files)
    return CredentialManager(open_store(db), keys, sts_endpoint_url=sts_endpoint_url)


@click.group(name="credentials")
def command() -> None:
    """Set, list, test, delete and rotate credentials."""


def _read_input(type_name: str) -> str:
    stdin = sys.stdin
    ctype = credential_type(type_name)
    if stdin.isatty():
        bare = ctype.model.bare_secret_field
        what = f"{bare} (or a JSON object)" if bare else f"JSON object with {', '.join(ctype.required_parts)}"
        return click.prompt(f"{type_name} {what}", hide_input=True, prompt_suffix=": ")
    return stdin.read()


def _parse_parts(type_name: str, parts: tuple[str, ...]) -> dict[str, str]:
    ctype = credential_type(type_name)
    out: dict[str, str] = {}
    for item in parts:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError("--part takes NAME=VALUE (for a non-secret part)")
        if key in ctype.secret_parts:
            raise UsageError(f"--part {key}: secret parts are never taken from the command line",
                             hint="give them on stdin or at the prompt")
        out[key] = value
    return out


@command.command(name="set")
@db_option
@_key_file_option
@_tenant
@_target
@click.option("--type", "type_name", required=True, type=click.Choice(sorted(CREDENTIAL_TYPES)),
              help="Credential type.")
@click.option("--part", "parts", multiple=True, metavar="NAME=VALUE",
              help="A non-secret part (app_id, installation_id, role_arn, ...); repeatable.")
def set_credential(db: Path | None, key_file: Path | None, tenant: str, plugin: str, name: str, type_name: str,
                   parts: tuple[str, ...]) -> None:
    """Store a credential read from stdin (a JSON object, or the bare secret) or a hidden prompt.

    \b
    echo '{"app_id": 1, "installation_id": 2, "private_key": "..."}' | \\
        integrations credentials set --tenant acme --plugin github --name app --type github_app
    integrations credentials set --tenant acme --plugin github --name pat --type github_pat < token.txt
    """
    extra = _parse_parts(type_name, parts)
    text = _read_input(type_name).strip()
    if not text:
        raise CredentialError(f"no {type_name} credential on stdin", hint="pipe a JSON object or the secret into the command")
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise CredentialError(f"stdin is not a valid JSON object (line {err.lineno} column {err.colno})") from None
    else:
        bare = credential_type(type_name).model.bare_secret_field
        if bare is None:
            parse_credential(type_name, text)  # raises the "needs a JSON object" error
        data = {bare: text}
    credential = parse_credential(type_name, {**data, **extra})
    info = _manager(db, key_file, create=True).set(tenant, plugin, name, credential)
    verb = "replaced" if info.rotated_at else "stored"
    click.echo(f"{verb} {type_name} credential '{name}' for plugin '{plugin}' of tenant '{tenant}' "
               f"(data key v{info.key_version})")


@command.command(name="list")
@db_option
@_tenant
@click.option("--plugin", default=None, help="Only this plugin's credentials.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_credentials(db: Path | None, tenant: str, plugin: str | None, as_json: bool) -> None:
    """A tenant's credentials: names, types, dates and non-secret facts (no secrets, no key needed)."""
    infos = CredentialManager(open_store(db), EnvironmentMasterKeys()).list(tenant, plugin)
    if as_json:
        for info in infos:
            click.echo(json.dumps(info.to_dict(), sort_keys=True, default=str))
        return
    print_table(f"{len(infos)} credential(s) of tenant {tenant}",
                ["plugin", "name", "type", "key", "created", "rotated", "expires", "details"],
                [[i.plugin, i.name, i.type, f"v{i.key_version}", _when(i.created_at), _when(i.rotated_at),
                  _when(i.expires_at), ", ".join(f"{k}={v}" for k, v in sorted(i.metadata.items()))] for i in infos])


def _when(moment) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else None


@command.command(name="test")
@db_option
@_key_file_option
@_tenant
@_target
@click.option("--accept", "accepted", multiple=True, type=click.Choice(sorted(CREDENTIAL_TYPES)),
              help="Types the plugin accepts (checked when given); repeatable.")
@click.option("--sts-endpoint-url", envvar="INTEGRATIONS_STS_ENDPOINT_URL", default=None,
              help="STS endpoint for aws_assume_role (e.g. a local test server).")
def test_credential(db: Path | None, key_file: Path | None, tenant: str, plugin: str, name: str,
                    accepted: tuple[str, ...], sts_endpoint_url: str | None) -> None:
    """Decrypt a credential, check its parts and, where it has one, obtain a token with it."""
    manager = _manager(db, key_file, sts_endpoint_url=sts_endpoint_url)
    check = authenticate_credential(manager, tenant, plugin, name, accepted=accepted or None)
    click.echo(f"ok: {check.type} credential '{name}' of plugin '{plugin}': {check.detail}")


@command.command(name="delete")
@db_option
@_tenant
@_target
def delete_credential(db: Path | None, tenant: str, plugin: str, name: str) -> None:
    """Remove a credential."""
    if not CredentialManager(open_store(db), EnvironmentMasterKeys()).delete(tenant, plugin, name):
        raise CredentialError(f"tenant '{tenant}' has no credential '{name}' for plugin '{plugin}'",
                              hint=f"see `integrations credentials list --tenant {tenant}`")
    click.echo(f"deleted credential '{name}' of plugin '{plugin}' for tenant '{tenant}'")


@command.command(name="rotate-master")
@db_option
@_key_file_option
@click.option("--old-key-file", "old_key_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The previous master key file (else INTEGRATIONS_MASTER_KEY_OLD); repeatable.")
def rotate_master(db: Path | None, key_file: Path | None, old_key_files: tuple[Path, ...]) -> None:
    """Re-wrap every tenant's data keys with the current master key; run again to resume.

    \b
    mv data/master.key data/master.key.old      # a new data/master.key is generated
    integrations credentials rotate-master --old-key-file data/master.key.old
    """
    report = _manager(db, key_file, create=True, old_key_files=old_key_files).rotate_master()
    click.echo(f"re-wrapped {report.done} data key(s) across {len(report.tenants)} tenant(s); "
               f"{report.already} already under the current master key")


@command.command(name="rotate-tenant")
@db_option
@_key_file_option
@_tenant
def rotate_tenant(db: Path | None, key_file: Path | None, tenant: str) -> None:
    """Re-encrypt a tenant's credentials under a new data key; run again to resume."""
    report = _manager(db, key_file).rotate_tenant(tenant)
    if report.key_version is None:
        click.echo(f"tenant '{tenant}' has no credentials; nothing to rotate")
        return
    retired = ", ".join(f"v{v}" for v in report.retired_versions) or "none"
    click.echo(f"re-encrypted {report.done} credential(s) of tenant '{tenant}' under data key "
               f"v{report.key_version}; retired {retired}")
