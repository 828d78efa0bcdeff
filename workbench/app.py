"""The mapping workbench: `integrations workbench` (or `make workbench`) serves this on 127.0.0.1:8501.

Pages: Mapping (write and preview mappings over samples), Correlations (events on a timeline and
the pairs the enrichment rules found), Health (each integration's state and dead letters) and
Plugins (the registry). Listening on any other address than loopback needs
INTEGRATIONS_WORKBENCH_PASSWORD; the app then asks for it.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from workbench._common import gate

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="Integrations workbench", layout="wide")
gate()

navigation = st.navigation([
    st.Page(str(HERE / "views" / "mapping.py"), title="Mapping", default=True),
    st.Page(str(HERE / "views" / "correlations.py"), title="Correlations", url_path="correlations"),
    st.Page(str(HERE / "views" / "health.py"), title="Health", url_path="health"),
    st.Page(str(HERE / "views" / "plugins.py"), title="Plugins", url_path="plugins"),
])
navigation.run()
