"""Health page: each integration's state, breaker and last success; dead letters with a replay button.

Figures are what the runner last saved (`integration_health`); dead letters are read per tenant.
Replaying maps failed records again with today's mapping (and hands failed fetches to the runner).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from integrations.deadletters import replay_dead_letters
from integrations.errors import IntegrationsError
from integrations.store._health import load_health
from workbench import _common

COLUMNS = ["tenant", "plugin", "state", "breaker_state", "last_success", "last_error", "calls", "failures",
           "latency_p50_ms", "latency_p95_ms", "updated_at"]

st.title("Health")
store = _common.store()
if not store.path.exists():
    st.info(f"No event store at {store.path} yet: run `integrations run` (or `make run`).")
    st.stop()
try:
    health = load_health(store)
except IntegrationsError as err:
    st.error(err.render())
    st.stop()

st.subheader("Integrations")
if not health:
    st.info("No health figures yet: they are saved by `integrations run`.")
else:
    frame = pd.DataFrame(health)
    st.dataframe(frame[[c for c in COLUMNS if c in frame.columns]], hide_index=True, key="health_table")

st.subheader("Dead letters")
message = st.session_state.pop("replay_message", None)
if message:
    st.success(message)
tenants = sorted(set(_common.tenants()) | {row["tenant"] for row in health})
rows = []
try:
    for tenant in tenants:
        for letter in store.list_dead_letters(tenant, status="open"):
            rows.append({"tenant": tenant, "plugin": letter["plugin"], "source": letter["source"],
                         "kind": letter["kind"], "reason": letter["reason"]})
except IntegrationsError as err:
    st.error(err.render())
    st.stop()
if not rows:
    st.success("No open dead letters.")
else:
    letters = pd.DataFrame(rows)
    counts = (letters.groupby(["tenant", "plugin", "source", "kind"]).size().reset_index(name="open"))
    st.dataframe(counts, hide_index=True, key="dead_letter_counts")
    with st.expander("Reasons"):
        st.dataframe(letters.groupby(["tenant", "plugin", "source", "reason"]).size().reset_index(name="records"),
                     hide_index=True)
    for i, row in counts.iterrows():
        label = f"Replay {row['open']} {row['kind']} dead letter(s) of {row['tenant']}/{row['plugin']}/{row['source']}"
        if st.button(label, key=f"replay::{i}"):
            try:
                from runner import replay_fetch_dead_letters
            except ImportError:  # pragma: no cover - the runner is part of the project
                replay_fetch_dead_letters = None
            try:
                outcome = replay_dead_letters(store, row["tenant"], plugin=row["plugin"], source=row["source"],
                                              fetch_replayer=replay_fetch_dead_letters)
            except IntegrationsError as err:
                st.error(err.render())
            else:
                done = sum(v["replayed"] for v in outcome.values())
                failing = sum(v["failing"] for v in outcome.values())
                st.session_state["replay_message"] = f"Replayed {done}; {failing} still failing."
                st.rerun()
