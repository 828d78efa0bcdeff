"""Correlations page: a tenant's events on a timeline by type, and the pairs the enrichment rules found.

Reads the store's `events` and `correlations` tables in short read-only connections. A pair
links to the evidence (commits, pull requests, alarms, logs) of both of its events.
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone

import pandas as pd
import streamlit as st

from integrations.errors import IntegrationsError
from workbench import _common


def _read(sql: str, params: list) -> pd.DataFrame:
    store = _common.store()
    if not store.path.exists():
        return pd.DataFrame()
    with store.reader() as conn:
        try:
            return conn.execute(sql, params).df()
        except Exception as err:  # noqa: BLE001 - an older store without the table: nothing to show
            if "does not exist" in str(err):
                return pd.DataFrame()
            raise


def _links(context) -> list[dict]:
    data = json.loads(context) if isinstance(context, str) else (context or {})
    return data.get("evidence_links", []) if isinstance(data, dict) else []


st.title("Correlations")
c1, c2, c3 = st.columns([1, 2, 2])
tenants = _common.tenants()
tenant = c1.selectbox("Tenant", tenants, index=tenants.index("demo") if "demo" in tenants else 0, key="corr_tenant")
try:
    bounds = _read("SELECT min(occurred_at) AS lo, max(occurred_at) AS hi FROM events WHERE tenant_id = ?", [tenant])
except IntegrationsError as err:
    st.error(err.render())
    st.stop()
if bounds.empty or pd.isna(bounds.iloc[0]["lo"]):
    st.info(f"No events for tenant {tenant} in {_common.store().path} yet: run `integrations run` (or `make run`).")
    st.stop()
lo = pd.Timestamp(bounds.iloc[0]["lo"]).to_pydatetime().date()
hi = pd.Timestamp(bounds.iloc[0]["hi"]).to_pydatetime().date()
chosen = c2.date_input("Time range (UTC)", value=(lo, hi), min_value=lo - timedelta(days=365),
                       max_value=hi + timedelta(days=365), key="corr_range")
start, end = (chosen if isinstance(chosen, tuple) and len(chosen) == 2 else (lo, hi))
since = datetime.combine(start, time.min, tzinfo=timezone.utc)
until = datetime.combine(end, time.max, tzinfo=timezone.utc)
window = c3.slider("Window (minutes between the two events)", min_value=1, max_value=24 * 60, value=120,
                   key="corr_window")

events = _read("""SELECT occurred_at, event_type, kind, severity, title, source_integration, event_id
                  FROM events WHERE tenant_id = ? AND occurred_at BETWEEN ? AND ? ORDER BY occurred_at""",
               [tenant, since, until])
st.subheader("Timeline")
if events.empty:
    st.info("No events in this range.")
else:
    st.caption(f"{len(events)} event(s) by type.")
    st.scatter_chart(events, x="occurred_at", y="kind", color="event_type", height=320)

pairs = _read("""SELECT c.rule, c.confidence, c.delta_seconds, a.occurred_at AS first_at, a.kind AS first_kind,
                        a.title AS first_title, b.kind AS second_kind, b.title AS second_title,
                        a.integration_context AS first_context, b.integration_context AS second_context,
                        c.matched
                 FROM correlations c
                 JOIN events a ON a.event_id = c.event_id AND a.tenant_id = c.tenant_id
                 JOIN events b ON b.event_id = c.related_event_id AND b.tenant_id = c.tenant_id
                 WHERE c.tenant_id = ? AND a.occurred_at BETWEEN ? AND ?
                   AND abs(coalesce(c.delta_seconds, 0)) <= ?
                 ORDER BY c.confidence DESC, a.occurred_at""", [tenant, since, until, window * 60])
st.subheader("Pairs found by the enrichment rules")
if pairs.empty:
    st.info("No correlated pairs in this range and window (the enrichment rules fill them during `integrations run`).")
else:
    pairs["first_evidence"] = [next((link["url"] for link in _links(c)), None) for c in pairs["first_context"]]
    pairs["second_evidence"] = [next((link["url"] for link in _links(c)), None) for c in pairs["second_context"]]
    shown = pairs.drop(columns=["first_context", "second_context", "matched"])
    st.dataframe(shown, hide_index=True, key="pairs_table", column_config={
        "first_evidence": st.column_config.LinkColumn("first evidence"),
        "second_evidence": st.column_config.LinkColumn("second evidence"),
        "confidence": st.column_config.NumberColumn(format="%.2f"),
        "delta_seconds": st.column_config.NumberColumn("seconds apart", format="%.0f"),
    })
    choice = st.selectbox("Evidence of a pair", range(len(pairs)), key="corr_pair",
                          format_func=lambda i: f"{pairs.iloc[i]['rule']}: {pairs.iloc[i]['first_title']} -> "
                                                f"{pairs.iloc[i]['second_title']}")
    row = pairs.iloc[choice]
    for side in ("first", "second"):
        links = _links(row[f"{side}_context"])
        st.markdown(f"**{row[f'{side}_title']}**")
        if not links:
            st.caption("no evidence links")
        for link in links:
            st.markdown(f"- [{link.get('description') or link['url']}]({link['url']}) ({link.get('type', 'link')})")
