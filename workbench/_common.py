"""What every workbench page shares: the store (read in short connections), the samples, the gate.

Pages format what `integrations.preview` and the store return; none of them maps records.
The store is opened read-only for one query at a time with a short lock wait, so the runner
(the one writer) is never held up by the workbench for longer than one read.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

import streamlit as st

from integrations.paths import mappings_dir
from integrations.preview import SampleSet, available_samples
from integrations.store import EventStore, default_store_path

PASSWORD_ENV = "INTEGRATIONS_WORKBENCH_PASSWORD"
READ_LOCK_WAIT = 2.0  # seconds a page waits for the store while the runner writes


def store() -> EventStore:
    """The event store the workbench reads (`INTEGRATIONS_STORE`, else data/integrations.duckdb)."""
    return EventStore(default_store_path(), lock_timeout=READ_LOCK_WAIT)


@st.cache_resource(show_spinner=False)
def _samples(database: str) -> SampleSet:
    return SampleSet(database)


def samples() -> SampleSet:
    """The samples every session shares (in memory, or `INTEGRATIONS_WORKBENCH_SAMPLES_DB`)."""
    return _samples(os.environ.get("INTEGRATIONS_WORKBENCH_SAMPLES_DB", ":memory:"))


def tenants() -> list[str]:
    """Tenants with samples or a tenant file."""
    from integrations.tenants import list_tenants

    found = {f.key.tenant for f in available_samples()} | set(list_tenants())
    return sorted(found) or ["demo"]


def plugins() -> list[str]:
    """Plugins that have mappings or samples."""
    found = {p.name for p in mappings_dir().glob("*") if p.is_dir()}
    found |= {f.key.plugin for f in available_samples()}
    return sorted(found)


def sources(plugin: str) -> list[str]:
    """Sources of a plugin that have a mapping or samples."""
    found = {p.stem for p in (mappings_dir() / plugin).glob("*.yaml")}
    found |= {f.key.source for f in available_samples() if f.key.plugin == plugin}
    return sorted(found)


def is_loopback(address: str) -> bool:
    if address in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def gate() -> None:
    """Ask for the password when one is set; refuse to serve a non-loopback address without one."""
    password = os.environ.get(PASSWORD_ENV, "")
    address = str(st.get_option("server.address") or "127.0.0.1")
    if not password:
        if not is_loopback(address):
            st.error(f"The workbench listens on {address} but {PASSWORD_ENV} is not set: it serves "
                     "only loopback without a password.")
            st.stop()
        return
    if st.session_state.get("_workbench_authenticated"):
        return
    st.title("Integrations workbench")
    typed = st.text_input("Password", type="password", key="_workbench_password")
    if typed:
        if hmac.compare_digest(typed.encode("utf-8"), password.encode("utf-8")):
            st.session_state["_workbench_authenticated"] = True
            st.rerun()
        st.error("Wrong password.")
    st.stop()


__all__ = ["gate", "is_loopback", "plugins", "samples", "sources", "store", "tenants"]
