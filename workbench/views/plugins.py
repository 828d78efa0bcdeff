"""Plugins page: the registry as `integrations plugins` sees it, and the plugins it refused."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from integrations.plugins import load_registry

st.title("Plugins")
registry = load_registry()
rows = [{"name": e.name, "version": e.version, "status": e.status, "description": e.description,
         "sources": ", ".join(e.sources), "events": ", ".join(e.supported_events),
         "credentials": ", ".join(e.required_credentials), "dependencies": ", ".join(e.dependencies),
         "distribution": e.distribution or ""}
        for _key, e in sorted(registry.entries.items())]
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="plugins_table")
else:
    st.info("No plugins registered (entry-point group `integrations.plugins`).")
for _key, entry in sorted(registry.entries.items()):
    with st.expander(f"{entry.name} {entry.version}: settings schema"):
        st.json(entry.configuration_schema, expanded=False)
if registry.problems:
    st.subheader("Refused")
    st.dataframe(pd.DataFrame([{"entry point": p.entry_point, "distribution": p.distribution, "why": p.message}
                               for p in registry.problems]), hide_index=True)
