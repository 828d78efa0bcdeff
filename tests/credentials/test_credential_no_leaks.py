"""Planted secrets never come out: not in logs, CLI output, reprs, errors, or any stored row.

Known secret values are planted in every credential type, used through the CLI and the API
(set, list, test, get, token renewal against the local token server and moto's STS, failures
included) with every logger at DEBUG, and then searched for in everything that was captured and
in every row of every table of the DuckDB file.
"""

from __future__ import annotations

import json
import logging
import secrets

import duckdb
import pytest

from integrations.credentials import (
    CredentialManager,
    EnvironmentMasterKeys,
    authenticate_credential,
    parse_credential,
    redact,
)
from integrations.errors import CredentialError, IntegrationsError
from integrations.store import EventStore

INSTALLATION = 4242
APP_ID = "9001"


def planted(name: str) -> str:
    return f"PLANTED-{name}-{secrets.token_hex(10)}"


def export_every_table(path) -> str:
    """Every row of every table, as CSV (COPY ... TO) and as Python text."""
    out = []
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
        assert {"credentials", "data_keys", "dead_letter", "events", "audit_log"} <= set(tables)
        for table in tables:
            target = path.parent / f"export-{table}.csv"
            conn.execute(f"COPY (SELECT * FROM {table}) TO '{target}' (HEADER)")
            out.append(target.read_text(encoding="utf-8", errors="replace"))
            out.append(repr(conn.execute(f"SELECT * FROM {table}").fetchall()))
    return "\n".join(out)


def test_planted_secrets_appear_nowhere(cli, tmp_path, token_server, sts_endpoint, app_key, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    db, key_file = tmp_path / "store.duckdb", tmp_path / "master.key"
    common = ["--db", str(db), "--key-file", str(key_file)]
    p = {n: planted(n) for n in ("pat", "hook", "client_secret", "refresh", "bad_refresh", "aws_id", "aws_secret",
                                 "aws_session", "src_id", "src_secret", "external_id", "sa_key", "api_key",
                                 "missing_part")}
    pem_lines = [line for line in app_key.private_pem.splitlines() if not line.startswith("-----")]
    token_server.state.app_public_keys[APP_ID] = app_key.public_pem
    token_server.state.installations[INSTALLATION] = APP_ID
    token_server.state.oauth_clients["jira-client"] = p["client_secret"]
    token_server.state.refresh_tokens["jira-client"] = p["refresh"]

    outputs: list[str] = []

    def run(*args: str, input: str | None = None, expect: int = 0) -> None:
        result = cli("--log-level", "DEBUG", "credentials", *args, input=input)
        outputs.extend([result.out, result.err])
        assert result.code == expect, result

    def set_(tenant: str, plugin: str, name: str, type_name: str, payload, *extra: str, expect: int = 0) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        run("set", *common, "--tenant", tenant, "--plugin", plugin, "--name", name, "--type", type_name, *extra,
            input=text, expect=expect)

    # -- through the CLI ------------------------------------------------------------------------
    set_("acme", "github", "pat", "github_pat", p["pat"] + "\n")
    set_("acme", "github", "app", "github_app", app_key.private_pem, "--part", f"app_id={APP_ID}",
         "--part", f"installation_id={INSTALLATION}", "--part", f"base_url={token_server.github_base_url}")
    set_("acme", "github", "hook", "webhook_secret", {"secret": p["hook"]})
    set_("acme", "jira", "oauth", "oauth2", {"token_url": token_server.token_url, "client_id": "jira-client",
                                             "client_secret": p["client_secret"], "refresh_token": p["refresh"]})
    set_("acme", "jira", "revoked", "oauth2", {"token_url": token_server.token_url, "client_id": "jira-client",
                                               "client_secret": p["client_secret"], "refresh_token": p["bad_refresh"]})
    set_("acme", "aws", "keys", "aws_access_keys", {"access_key_id": p["aws_id"], "secret_access_key": p["aws_secret"],
                                                    "session_token": p["aws_session"], "region": "eu-west-1"})
    set_("acme", "aws", "role", "aws_assume_role", {
        "role_arn": "arn:aws:iam::123456789012:role/reader", "external_id": p["external_id"],
        "source_access_key_id": p["src_id"], "source_secret_access_key": p["src_secret"]})
    set_("acme", "gcp", "sa", "service_account", {"type": "service_account", "project_id": "proj",
                                                  "client_email": "bot@proj.iam.example", "private_key": p["sa_key"]})
    set_("acme", "jira", "broken", "oauth2", {"token_url": token_server.token_url, "client_secret": p["missing_part"]},
         expect=1)
    set_("acme", "x", "y", "api_key", "", "--part", f"key={p['api_key']}", expect=2)
    set_("acme", "x", "y", "api_key", '{"key": "' + p["api_key"], expect=1)

    run("list", "--db", str(db), "--tenant", "acme")
    run("list", "--db", str(db), "--tenant", "acme", "--json")
    for plugin, name in [("github", "pat"), ("github", "app"), ("github", "hook"), ("jira", "oauth"),
                         ("aws", "keys"), ("gcp", "sa")]:
        run("test", *common, "--tenant", "acme", "--plugin", plugin, "--name", name)
    run("test", *common, "--sts-endpoint-url", sts_endpoint, "--tenant", "acme", "--plugin", "aws", "--name", "role")
    run("test", *common, "--tenant", "acme", "--plugin", "jira", "--name", "revoked", expect=1)
    run("test", *common, "--tenant", "acme", "--plugin", "github", "--name", "pat", "--accept", "aws_access_keys",
        expect=1)

    # -- through the API ------------------------------------------------------------------------
    manager = CredentialManager(EventStore(db), EnvironmentMasterKeys(key_file=key_file, environ={}),
                                sts_endpoint_url=sts_endpoint)
    manager.set("acme", "api", "key", parse_credential("api_key", {"key": p["api_key"]}))
    log = logging.getLogger("integrations.plugins.leaky")
    texts: list[str] = [repr(manager), str(manager)]
    for info in manager.list("acme"):
        cred = manager.get("acme", info.plugin, info.name)
        provider = manager.provider("acme", info.plugin, info.name)
        texts += [repr(info), repr(cred), str(cred), cred.model_dump_json(), repr(cred.model_dump()), repr(provider)]
        log.debug("credential %s / %r", cred, cred)
        for secret_part in ("token", "secret", "key", "client_secret", "secret_access_key"):
            value = getattr(cred, secret_part, None)
            if value is not None:
                log.warning("a careless plugin logs %s and %s", value, value.get_secret_value())
        if info.type in ("github_app", "oauth2") and info.name != "revoked":
            token = provider.token()
            texts.append(repr(token))
            log.info("authenticated with %s (header %s)", token, provider.headers())
        if info.type == "aws_assume_role":
            frozen = provider.frozen()
            log.debug("assumed-role keys %s %s", frozen.secret_key, frozen.token)
            p["sts_secret"], p["sts_session"] = frozen.secret_key, frozen.token
        texts.append(repr(authenticate_credential(manager, "acme", info.plugin, info.name))
                     if info.name != "revoked" else "")
    try:
        raise RuntimeError(f"a library failed while holding {p['client_secret']}")
    except RuntimeError:
        log.exception("plugin crashed")
    errors: list[IntegrationsError] = []
    for call in (lambda: manager.provider("acme", "jira", "revoked").token(),
                 lambda: parse_credential("oauth2", {"client_secret": p["client_secret"], "token_url": "x"}),
                 lambda: manager.get("acme", "github", "pat", accepted=("github_app",))):
        with pytest.raises(CredentialError) as info:
            call()
        errors.append(info.value)
    texts += [t for e in errors for t in (str(e), repr(e), e.render(), json.dumps(e.attrs()))]

    # what the token server and STS handed out is secret too
    p.update({f"installation{i}": t for i, t in enumerate(token_server.state.issued_installation_tokens)})
    p.update({f"access{i}": t for i, t in enumerate(token_server.state.issued_access_tokens)})
    p["rotated_refresh"] = token_server.state.refresh_tokens["jira-client"]
    assert token_server.state.issued_installation_tokens and token_server.state.issued_access_tokens
    master_key_text = key_file.read_text().strip()

    captured = capfd.readouterr()
    haystacks = {
        "logs": caplog.text + "\n".join(r.getMessage() for r in caplog.records),
        "cli output": "\n".join(outputs),
        "process output": captured.out + captured.err,
        "reprs and errors": "\n".join(texts),
        "stored rows": export_every_table(db),
    }
    assert "a careless plugin logs" in haystacks["logs"] and "plugin crashed" in haystacks["logs"]
    assert "missing 'client_id', 'refresh_token'" in haystacks["cli output"]
    for where, text in haystacks.items():
        for name, value in [*p.items(), *((f"pem line {i}", line) for i, line in enumerate(pem_lines)),
                            ("master key", master_key_text)]:
            assert value not in text, f"{name} leaked into {where}"
    raw = db.read_bytes()
    for name, value in p.items():
        assert value.encode() not in raw, f"{name} is in the store file in clear"


def test_redact_masks_registered_values_and_secret_shapes():
    from integrations.credentials import register_secret

    value = planted("registered")
    register_secret(value)
    assert redact(f"x {value} y") == "x *** y"
    assert redact('{"access_token": "abc123", "n": 1}') == '{"access_token": "***", "n": 1}'
    assert redact("<SecretAccessKey>k/ey+</SecretAccessKey>") == "<SecretAccessKey>***</SecretAccessKey>"
    assert redact("grant_type=refresh_token&refresh_token=rt_1&client_id=c") == \
        "grant_type=refresh_token&refresh_token=***&client_id=c"
    assert redact("{'Authorization': 'Bearer ghs_x1'}") == "{'Authorization': 'Bearer ***'}"
    assert redact("nothing secret here") == "nothing secret here"
