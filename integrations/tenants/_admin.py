"""Who may change what, and the audit trail of every accepted change.

Roles live in the tenant file (`roles: {alice: admin}`). The acting person comes from `--actor`
or `INTEGRATIONS_ACTOR` (default: the login name). Every change is checked for permission
before anything is written, and every accepted change appends exactly one audit record with a
diff in which secret-looking values are redacted.
"""

from __future__ import annotations

import difflib
import getpass
import os
import re
from pathlib import Path
from typing import Any

import yaml

from integrations.errors import ConfigError, IntegrationsError
from integrations.store import EventStore
from integrations.store._tenants import add_audit, delete_tenant_rows
from integrations.tenants._config import TENANT_ID, TenantConfig, load_tenant_config, parse_tenant_config, tenants_dir

PERMISSIONS: dict[str, set[str]] = {
    "config.read": {"viewer", "analyst", "admin"},
    "config.write": {"admin"},
    "roles.write": {"admin"},
    "credentials.write": {"admin"},
    "mappings.write": {"analyst", "admin"},
    "dlq.replay": {"analyst", "admin"},
    "tenant.delete": {"admin"},
}
_SECRET_KEY = re.compile(r"(secret|token|password|passwd|private|api[_-]?key|credential)", re.I)
REDACTED = "***"


class PermissionDenied(ConfigError):
    """The acting person lacks the role a change needs."""

    exit_code = 3


def current_actor(explicit: str | None = None) -> str:
    """`--actor`, else `INTEGRATIONS_ACTOR`, else the login name."""
    if explicit:
        return explicit
    env = os.environ.get("INTEGRATIONS_ACTOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def require(config: TenantConfig, actor: str, permission: str) -> None:
    """Raise PermissionDenied unless the actor's role in this tenant grants the permission."""
    role = config.roles.get(actor) or config.roles.get("*")  # "*": the role of everyone else
    allowed = PERMISSIONS[permission]
    if role not in allowed:
        have = f"has role '{role}'" if role else "has no role"
        raise PermissionDenied(f"'{actor}' {have} in tenant '{config.tenant}'; {permission} needs "
                               f"{' or '.join(sorted(allowed))}", hint="an admin can grant it with "
                               f"`integrations config set --tenant {config.tenant} roles.{actor} <role>`")


def redact(value: Any, key: str = "") -> Any:
    """A copy with secret-looking keys' values replaced by ***."""
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) and not isinstance(v, (dict, list)) else redact(v, str(k)))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    return value


def config_diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """A unified diff of two configurations as YAML, secrets redacted."""
    a = yaml.safe_dump(redact(before), sort_keys=True).splitlines() if before is not None else []
    b = yaml.safe_dump(redact(after), sort_keys=True).splitlines() if after is not None else []
    return "\n".join(difflib.unified_diff(a, b, "before", "after", lineterm=""))


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = {}
            node[part] = child
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set '{dotted}': '{part}' is not a mapping", field=dotted)
        node = child
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def permission_for(key: str) -> str:
    return "roles.write" if key == "roles" or key.startswith("roles.") else "config.write"


class TenantAdmin:
    """Changes to tenant files, each permission-checked and audited in the store."""

    def __init__(self, store: EventStore, root: Path | None = None) -> None:
        self.store = store
        self.root = root or tenants_dir()
        self._registry = None  # loaded on first use, to check settings against plugin schemas

    def path(self, tenant_id: str) -> Path:
        return self.root / f"{tenant_id}.yaml"

    def load(self, tenant_id: str) -> TenantConfig:
        config = load_tenant_config(tenant_id, self.root)
        if config is None:
            raise ConfigError(f"no tenant '{tenant_id}'", file=str(self.path(tenant_id)),
                              hint=f"create it with `integrations tenant create {tenant_id}`")
        return config

    def show(self, tenant_id: str, actor: str) -> dict[str, Any]:
        config = self.load(tenant_id)
        require(config, actor, "config.read")
        return redact(config.model_dump(mode="json", exclude_defaults=True))

    def create(self, tenant_id: str, actor: str, description: str = "") -> TenantConfig:
        if not TENANT_ID.match(tenant_id):
            raise ConfigError(f"'{tenant_id}' is not a valid tenant id",
                              hint="lower case letters, digits, '-' and '_' (at most 63)")
        path = self.path(tenant_id)
        if path.exists():
            raise ConfigError(f"tenant '{tenant_id}' already exists", file=str(path))
        config = TenantConfig(tenant=tenant_id, description=description, roles={actor: "admin"})
        self._write(config)
        add_audit(self.store, tenant_id, actor, "tenant.create", tenant_id,
                  {"diff": config_diff(None, config.model_dump(mode="json", exclude_defaults=True))})
        return config

    def set(self, tenant_id: str, actor: str, key: str, value: Any) -> str:
        """Set (or with None, remove) one dotted key; returns the diff that was audited."""
        config = self.load(tenant_id)
        require(config, actor, permission_for(key))
        if key == "tenant" or key.startswith("tenant."):
            raise ConfigError("the tenant id cannot be changed", field=key)
        before = config.model_dump(mode="json", exclude_defaults=True)
        data = config.model_dump(mode="json", exclude_defaults=True)
        _set_path(data, key, value)
        new_config, _doc = parse_tenant_config(yaml.safe_dump(data, sort_keys=False), str(self.path(tenant_id)))
        self._check_settings(new_config)
        after = new_config.model_dump(mode="json", exclude_defaults=True)
        diff = config_diff(before, after)
        if not diff:
            return ""
        self._write(new_config)
        add_audit(self.store, tenant_id, actor, "config.set", key, {"diff": diff})
        return diff

    def record_mapping_save(self, tenant_id: str, actor: str, mapping_file: str, diff: str) -> None:
        """Mappings are shared by all tenants; saving one is audited in the saver's tenant."""
        config = self.load(tenant_id)
        require(config, actor, "mappings.write")
        add_audit(self.store, tenant_id, actor, "mapping.save", mapping_file, {"diff": diff})

    def delete(self, tenant_id: str, actor: str) -> dict[str, int]:
        """Remove the tenant's rows everywhere and its file; nothing of another tenant's is touched."""
        config = self.load(tenant_id)
        require(config, actor, "tenant.delete")
        counts = delete_tenant_rows(self.store, tenant_id, actor) if self.store.path.exists() else {}
        self.path(tenant_id).unlink()
        return counts

    def _check_settings(self, config: TenantConfig) -> None:
        """Settings are checked against each plugin's schema, when the plugin is installed."""
        from pydantic import ValidationError

        if self._registry is None:
            from integrations.plugins import load_registry

            self._registry = load_registry()
        registry = self._registry
        for name, entry in config.integrations.items():
            try:
                cls = registry.resolve(name, entry.version)
            except IntegrationsError:
                continue  # an uninstalled plugin is reported by `integrations doctor`, not here
            try:
                cls.settings_model.model_validate(entry.settings)
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ConfigError(f"integrations.{name}.settings.{where}: {first['msg']}",
                                  field=f"integrations.{name}.settings.{where}") from None

    def _write(self, config: TenantConfig) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
        tmp = self.path(config.tenant).with_suffix(".yaml.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.path(config.tenant))
