"""Mapping page: pick samples, edit a mapping, see its events, errors and figures, save it.

Everything shown comes from `integrations.preview`: the page (selected records first) is mapped
by the reference engine on every edit; coverage, counts and changed records are computed over
the whole sample set by the compiled engine after the page is on screen.
"""

from __future__ import annotations

import streamlit as st

from integrations.errors import IntegrationsError
from integrations.paths import mapping_path
from integrations.preview import evaluate, parse_records, preview, save, validate
from integrations.tenants import current_actor
from workbench import _common

PAGE_LIMIT = 200
TEMPLATE = """plugin: {plugin}
source: {source}
version: 1
description: What this mapping makes from {plugin} {source} records.
outputs:
  - kind: {source}
    event_type: system
    fields:
      external_id: id
      occurred_at: created_at
      title: "format('{plugin} {source} {{}}', id)"
"""


def excerpt(text: str, line: int, col: int | None, around: int = 2) -> str:
    """The lines around an error, the line marked with `>` and a caret under the column."""
    lines = text.splitlines()
    start, end = max(1, line - around), min(len(lines), line + around)
    out = []
    for number in range(start, end + 1):
        out.append(f"{'>' if number == line else ' '}{number:4d} | {lines[number - 1]}")
        if number == line and col:
            out.append(" " * (7 + col) + "^")
    return "\n".join(out)


def _choose() -> tuple[str, str, str]:
    c1, c2, c3 = st.columns(3)
    tenants = _common.tenants()
    tenant = c1.selectbox("Tenant", tenants, index=tenants.index("demo") if "demo" in tenants else 0, key="tenant")
    plugins = _common.plugins()
    if not plugins:
        st.warning("No mappings and no samples found: add `mappings/<plugin>/<source>.yaml` or samples.")
        st.stop()
    plugin = c2.selectbox("Plugin", plugins, key="plugin")
    sources = _common.sources(plugin)
    source = c3.selectbox("Source", sources, key=f"source::{plugin}")
    return tenant, plugin, source


def _upload(tenant: str, plugin: str, source: str) -> None:
    samples = _common.samples()
    with st.expander("Load records from a file (JSON or JSON Lines)"):
        uploaded = st.file_uploader("Records", type=["json", "jsonl", "ndjson"], key=f"upload::{plugin}/{source}")
        how = st.radio("Into the sample set", ["replace it", "add to it"], horizontal=True,
                       key=f"upload_how::{plugin}/{source}")
        if uploaded is not None and st.button("Load as samples", key=f"upload_go::{plugin}/{source}"):
            try:
                records = parse_records(uploaded.getvalue(), uploaded.name)
            except IntegrationsError as err:
                st.error(err.render())
            else:
                count = samples.load(tenant, plugin, source, records, origin=uploaded.name,
                                     append=how == "add to it")
                st.success(f"Loaded {len(records)} record(s) from {uploaded.name}; the set has {count}.")


def _records(tenant: str, plugin: str, source: str, count: int) -> list[int]:
    """The searchable sample table; returns the selected record indexes (the first one if none)."""
    samples = _common.samples()
    search = st.text_input("Search the records", key=f"search::{tenant}/{plugin}/{source}",
                           placeholder="text anywhere in the record's JSON")
    matching = samples.count_matching(tenant, plugin, source, search)
    table = samples.search(tenant, plugin, source, search, limit=PAGE_LIMIT)
    st.caption(f"{matching} of {count} record(s) match" + (f"; showing the first {PAGE_LIMIT}" if matching > PAGE_LIMIT else "")
               + ". Select rows to preview them first.")
    state = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="multi-row", height=240,
                         key=f"records::{tenant}/{plugin}/{source}/{search}",
                         column_config={"record_index": st.column_config.NumberColumn("#", width="small")})
    rows = list(getattr(getattr(state, "selection", None), "rows", []) or [])
    chosen = [int(table.iloc[i]["record_index"]) for i in rows if i < len(table)]
    if not chosen and len(table):
        chosen = [int(table.iloc[0]["record_index"])]
    return chosen


def _issues_panel(text: str, issues) -> None:
    if not issues:
        st.success("The mapping is valid.", icon=":material/check:")
        return
    with st.container(key="mapping_errors"):
        st.markdown(f"**{len(issues)} error(s)**")
        for issue in issues:
            st.error(str(issue), icon=":material/error:")
            if issue.line:
                st.code(excerpt(text, issue.line, issue.col), language=None)


def _save(path, text: str, tenant: str, valid: bool, unchanged: bool) -> None:
    actor = current_actor()
    c1, c2 = st.columns([1, 3])
    clicked = c1.button("Save", type="primary", disabled=not valid or unchanged, key="save")
    c2.caption(f"Saves {path} as **{actor}** in tenant **{tenant}** (needs the analyst or admin role); "
               + ("nothing to save." if unchanged else "only a valid mapping is saved."))
    if clicked:
        try:
            result = save(path, text, tenant=tenant, actor=actor)
        except IntegrationsError as err:
            st.session_state["save_message"] = ("error", err.render())
        else:
            st.session_state["save_message"] = ("success", f"Saved {result.path} as {result.actor}; "
                                                "the change is in the audit history (mapping.save).")
        st.rerun()
    message = st.session_state.pop("save_message", None)
    if message:
        kind, text_ = message
        (st.success if kind == "success" else st.error)(text_)


def _event_card(result, record_index: int) -> None:
    outcome = result.outcome(record_index)
    if outcome is None:
        return
    if outcome.status == "rejected":
        st.error(f"Record {record_index} is rejected: {outcome.reason}"
                 + (f" (field {outcome.field})" if outcome.field else ""))
    elif outcome.status == "filtered":
        st.info(f"Record {record_index} is filtered: {outcome.reason}")
    else:
        events = result.events
        mine = events[events["record_index"] == record_index].drop(columns=["record_index"])
        mine = mine.dropna(axis=1, how="all")
        shown = mine.T.astype(str)
        shown.columns = [f"event {i + 1}" for i in range(len(shown.columns))]
        st.markdown(f"**Events of record {record_index}**")
        with st.container(key="selected_events"):
            st.table(shown)


def _scratchpad(record) -> None:
    try:
        from st_keyup import st_keyup
    except ImportError:  # pragma: no cover - the component is a dependency; plain input as a fallback
        st_keyup = None
    label = "JMESPath on the selected record (evaluated as you type)"
    if st_keyup is not None:
        expression = st_keyup(label, key="scratchpad", debounce=150, placeholder="e.g. repository.full_name")
    else:
        expression = st.text_input(label, key="scratchpad")
    value, why = evaluate(expression or "", record)
    if not expression:
        st.caption("Type an expression: it is evaluated against the record, as a field's expression is.")
    elif why:
        st.warning(why)
    else:
        st.json(value)


def _live_editor(editor_key: str) -> str:
    """The YAML editor (Ace, in a component that answers 300 ms after the last keystroke).

    `st.session_state[editor_key]` holds the current text; the editor is created once from it
    and then keeps its own content (giving it each answer back would overwrite what was typed
    meanwhile). Validation errors are shown as annotations in its gutter, at their line.
    """
    try:
        from code_editor import code_editor
    except ImportError:  # pragma: no cover - a dependency; a plain text box as a fallback
        return st.text_area("Mapping YAML", key=editor_key, height=520, label_visibility="collapsed")
    seed_key, seen_key = f"{editor_key}::seed", f"{editor_key}::answer"
    seed = st.session_state.setdefault(seed_key, st.session_state[editor_key])
    text = st.session_state[editor_key]
    annotations = [{"row": issue.line - 1, "column": max((issue.col or 1) - 1, 0), "type": "error", "text": str(issue)}
                   for issue in validate(text) if issue.line]
    with st.container(key="mapping_editor"):
        answer = code_editor(seed, lang="yaml", height=[22, 30], response_mode="debounce", key=f"ace::{editor_key}",
                             props={"annotations": annotations, "debounceChangePeriod": 300},
                             options={"showLineNumbers": True, "tabSize": 2, "useSoftTabs": True, "wrap": False,
                                      "enableLiveAutocompletion": False, "enableBasicAutocompletion": False,
                                      "enableSnippets": False})
    if answer and answer.get("id") and answer.get("id") != st.session_state.get(seen_key):
        st.session_state[seen_key] = answer["id"]
        if answer.get("text") is not None and answer["text"] != text:
            st.session_state[editor_key] = answer["text"]
            st.rerun()  # the annotations and the preview follow the new text
    return text


st.title("Mapping")
tenant, plugin, source = _choose()
_upload(tenant, plugin, source)
samples = _common.samples()
count = samples.ensure(tenant, plugin, source)
path = mapping_path(plugin, source)
saved_text = path.read_text(encoding="utf-8") if path.exists() else None

left, right = st.columns([5, 6])
with left:
    st.subheader("Samples")
    if not count:
        st.info(f"No samples for {tenant}/{plugin}/{source}: upload a JSON or JSON Lines file above.")
        selected: list[int] = []
        record = None
    else:
        selected = _records(tenant, plugin, source, count)
        record = samples.record(tenant, plugin, source, selected[0]) if selected else None
        if record is not None:
            st.markdown(f"**Record {selected[0]}**")
            st.json(record, expanded=1)

with right:
    st.subheader("Mapping")
    editor_key = f"yaml::{plugin}/{source}"
    if editor_key not in st.session_state:
        st.session_state[editor_key] = saved_text if saved_text is not None else TEMPLATE.format(plugin=plugin, source=source)
    st.caption(f"`{path}` - the preview follows as you type; errors are marked at their line.")
    text = _live_editor(editor_key)
    result = preview(text, samples, tenant=tenant, plugin=plugin, source=source, limit=PAGE_LIMIT,
                     selected=selected, saved=saved_text if saved_text is not None else False, whole_set=False)
    _issues_panel(text, result.issues)
    _save(path, text, tenant, result.valid, saved_text == text)
    with st.expander("Diff against the saved file", expanded=False):
        st.code(result.diff or "(no change)", language="diff")

if result.mapping is not None and count:
    st.subheader("Preview")
    page_counts = {s: sum(1 for o in result.outcomes if o.status == s) for s in ("mapped", "filtered", "rejected")}
    st.caption(f"Page of {len(result.outcomes)} record(s) (selected first): {page_counts['mapped']} mapped, "
               f"{page_counts['filtered']} filtered, {page_counts['rejected']} rejected; "
               f"{len(result.events)} event(s) in {result.timings.get('page', 0):.2f}s.")
    if selected:
        _event_card(result, selected[0])
    tabs = st.tabs(["Events", "Trace", "Rejected and filtered", "Scratchpad", "Unmapped fields",
                    "Coverage", "Counts", "Changed records"])
    with tabs[0]:
        st.dataframe(result.events, hide_index=True, key="events_table")
    with tabs[1]:
        if selected:
            st.caption(f"Each field of record {selected[0]}: its expression, the value, or why it is null.")
            st.dataframe(result.trace(selected[0]), hide_index=True, key="trace_table")
    with tabs[2]:
        st.markdown("**Rejected** (the record is kept as a dead letter by the runner)")
        st.dataframe(result.rejections, hide_index=True)
        st.markdown("**Filtered** (no output makes an event)")
        st.dataframe(result.filtered, hide_index=True)
    with tabs[3]:
        if record is not None:
            _scratchpad(record)
    with tabs[4]:
        st.caption("Source fields of the page's records that no expression reads.")
        st.dataframe(result.unmapped, hide_index=True)
    with st.spinner("Whole sample set..."):
        result.compute_whole_set(python_budget=0.5)
    figures = result.figures
    note = ""
    if figures is not None:
        note = (f"Whole set of {figures.records} record(s), {figures.engine} engine, {figures.seconds:.2f}s"
                + (f"; {figures.unchecked} record(s) not checked (time budget)" if figures.unchecked else ""))
    with tabs[5]:
        st.caption(note + ". Share: of the output's events, how many have the field set.")
        st.dataframe(result.coverage, hide_index=True, key="coverage_table",
                     column_config={"share": st.column_config.ProgressColumn("share", min_value=0.0, max_value=1.0,
                                                                             format="percent")})
    with tabs[6]:
        st.caption(note)
        st.dataframe(result.counts, hide_index=True)
    with tabs[7]:
        changed = result.changed
        st.caption(note + f". {len(changed)} record(s) give other events than the saved mapping.")
        st.dataframe(changed, hide_index=True)
elif result.mapping is None:
    st.info("Fix the errors to see the preview.")
