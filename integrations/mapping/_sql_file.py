"""The fast path: a JSON Lines file mapped by SQL straight into the store, memory bounded.

Mapping runs in a private in-memory DuckDB, not on the store's connection: the store file is
held only while a group of finished events is merged (a few seconds), never while they are
computed, so the workbench and notebooks keep reading between groups. Each batch of lines is
handed to DuckDB as small Arrow chunks so that both cores work on it (a single chunk is one
task). Events gather in the private database (it spills to a temporary folder past
`memory_limit`) and are merged in groups of about `flush_events`, each group one transaction with
its dead letters. The store ends exactly as `pipeline.ingest` with the Python engine leaves it
(raw records are not kept).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from integrations.events import CanonicalEvent
from integrations.mapping._compile import CompiledMapping
from integrations.mapping._engine import MapResult, PythonEngine, Rejection
from integrations.mapping._sql import ASSEMBLY_ERRORS, _assemble, chunked, connect, plan_mapping
from integrations.mapping._sql_store import EVENT_COLUMNS, install_store_macros, rows_query

# Lines whose JSON DuckDB reads but Python would not (trailing commas), or reads differently (NaN):
# they go to the Python path, which reads them exactly as `integrations.records` does.
_PYTHON_ONLY_LINE = r"NOT json_valid(rec) OR regexp_matches(rec, ',\s*[\]}]|NaN|Infinity')"


@dataclass
class FileReport:
    """What `map_file` did: the engine's counts and the store's."""

    read: int = 0
    mapped: int = 0
    filtered: int = 0
    rejected: int = 0
    events: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    delegated: int = 0  # records the Python engine mapped because SQL could not vouch for them
    python_rows: int = 0  # events built in Python from SQL values
    flushes: int = 0  # store transactions
    rejections: list = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if k != "rejections"}


def _line_batches(path, batch_size: int, batch_bytes: int) -> Iterator[tuple[int, list[int], pa.Array]]:
    """(first position, line numbers, texts as an Arrow array) of the non-blank lines of a file.

    The Python strings of a batch are dropped once Arrow holds the text: a batch costs its size
    about once in Python's heap, not three times.
    """
    numbers: list[int] = []
    texts: list[str] = []
    size = 0
    position = 0
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            numbers.append(line_no)
            texts.append(line.rstrip("\r\n"))
            size += len(line)
            if len(texts) >= batch_size or size >= batch_bytes:
                array = pa.array(texts, pa.string())
                texts = []
                yield position, numbers, array
                position += len(numbers)
                numbers, size = [], 0
    if texts:
        yield position, numbers, pa.array(texts, pa.string())


def _is_json_lines(path) -> bool:
    """False when the file is one JSON document (an array or an object), as `iter_records` reads it."""
    with open(path, encoding="utf-8") as handle:
        head = handle.read(1 << 16)
    stripped = head.lstrip()
    if not stripped or stripped[0] not in "[{":
        return True
    if stripped[0] == "[":
        return False
    first = stripped.splitlines()[0]
    try:
        json.loads(first)
    except ValueError:
        return False  # an object over several lines: one document
    rest = stripped[len(first):].strip()
    return bool(rest) or len(head) == (1 << 16)


class _FileMapper:
    """One `map_file` call: the private database, the batches' event rows waiting to be merged, the report."""

    def __init__(self, mapping: CompiledMapping, *, tenant_id: str, store, run_id: str | None,
                 memory_limit: str, flush_events: int, keep_dead_letters: bool) -> None:
        self.mapping = mapping
        self.tenant_id = tenant_id
        self.store = store
        self.run_id = run_id
        self.flush_events = flush_events
        self.keep_dead_letters = keep_dead_letters
        self.plans = plan_mapping(mapping)
        self.precedence = int(getattr(mapping.spec, "precedence", 100))
        self.python = PythonEngine()
        self.report = FileReport()
        self.staged: list[str] = []  # SELECTs of the event rows mapped since the last flush
        self.tables: list[str] = []  # the temp tables they read
        self.staged_events = 0
        self.staged_rejections: list[Rejection] = []
        self.batches = 0
        self.spill = tempfile.mkdtemp(prefix="integrations-map-")
        self.conn = connect()
        install_store_macros(self.conn)
        for setting in (f"memory_limit = '{memory_limit}'", f"temp_directory = '{self.spill}'",
                        "preserve_insertion_order = false", "TimeZone = 'UTC'"):
            self.conn.execute(f"SET {setting}")

    def close(self) -> None:
        self.conn.close()
        shutil.rmtree(self.spill, ignore_errors=True)

    # -- one batch of lines --------------------------------------------------------------------

    def map_batch(self, first: int, numbers: list[int], array: pa.Array) -> None:
        """Map a batch into temp tables `_b<n>_rows<i>` (SQL-built rows) and `_b<n>_py` (Python-built)."""
        conn, plugin = self.conn, self.mapping.plugin
        tag = f"_b{self.batches}"
        self.batches += 1
        conn.register("_lines", chunked(pa.table({"rid": pa.array(range(len(numbers)), pa.int64()), "rec": array})))
        python_only = {r[0] for r in conn.execute(f"SELECT rid FROM _lines WHERE {_PYTHON_ONLY_LINE}").fetchall()}
        conn.register("_bad_lines", pa.table({"rid": pa.array(sorted(python_only), pa.int64())}))
        source_rel = "(SELECT rid, rec FROM _lines ANTI JOIN _bad_lines USING (rid))"
        delegated = set(python_only)
        py_rows: list[tuple[int, int, int, CanonicalEvent]] = []
        tables = [f"{tag}_rows{i}" for i in range(len(self.plans))]
        for plan, (i, table) in zip(self.plans, enumerate(tables)):
            conn.execute(f"CREATE TEMP TABLE {table} AS "
                         + rows_query(plan, i, source_rel, self.tenant_id, plugin, self.mapping.source))
            for (rid,) in conn.execute(f"SELECT DISTINCT rid FROM {table} WHERE bad OR NOT ok").fetchall():
                delegated.add(rid)
            for rid, out, pos, vals in conn.execute(
                    f"SELECT rid, out, pos, vals FROM {table} WHERE vals IS NOT NULL").fetchall():
                if rid in delegated:
                    continue
                try:
                    py_rows.append((rid, out, pos, _assemble(plan, json.loads(vals), self.tenant_id, plugin)))
                except ASSEMBLY_ERRORS:
                    delegated.add(rid)
        py_rows = [r for r in py_rows if r[0] not in delegated]
        self.report.python_rows += len(py_rows)
        result = self._python_records(first, numbers, delegated, py_rows)
        conn.unregister("_lines")
        conn.unregister("_bad_lines")
        # Keep only the rows SQL vouches for, of records no engine handed to Python.
        conn.register("_deleg", pa.table({"rid": pa.array(sorted(delegated), pa.int64())}))
        sql_mapped = set()
        for table in tables:
            conn.execute(f"DELETE FROM {table} WHERE NOT sqlrow OR rid IN (SELECT rid FROM _deleg)")
            sql_mapped.update(r[0] for r in conn.execute(f"SELECT DISTINCT rid FROM {table}").fetchall())
        conn.unregister("_deleg")
        sql_mapped.update(r[0] for r in py_rows if r[0] not in delegated)  # built in Python from SQL's values
        self._stage(tag, first, tables, py_rows)
        report = self.report
        report.read += len(numbers)
        report.mapped += len(sql_mapped) + result.mapped
        report.rejected += result.rejected
        report.filtered += len(numbers) - len(sql_mapped) - result.mapped - result.rejected
        report.rejections.extend(result.rejections)
        self.staged_rejections.extend(result.rejections)
        if self.staged_events >= self.flush_events:
            self.flush()

    def _python_records(self, first: int, numbers: list[int], delegated: set[int],
                        py_rows: list[tuple[int, int, int, CanonicalEvent]]) -> MapResult:
        """Records SQL could not vouch for: read and mapped exactly as the Python path does."""
        result = MapResult()
        if not delegated:
            return result
        texts = dict(self.conn.execute("SELECT rid, rec FROM _lines WHERE list_contains(?, rid)",
                                       [sorted(delegated)]).fetchall())
        for rid in sorted(delegated):
            text = texts[rid]
            try:
                record = json.loads(text)
            except ValueError as err:
                result.read += 1
                result.rejections.append(Rejection(record_index=first + rid, record={"unparsed_line": text[:2000]},
                                                   reason=f"line {numbers[rid]} is not valid JSON: {err}"))
                continue
            one = self.python.map(self.mapping, [record], tenant_id=self.tenant_id, start_index=first + rid)
            result.extend(one)
            py_rows.extend((rid, 0, k, ev) for k, ev in enumerate(one.events))
        self.report.delegated += len(delegated)
        return result

    def _stage(self, tag: str, first: int, tables: list[str], py_rows: list[tuple[int, int, int, CanonicalEvent]]) -> None:
        """Name this batch's event rows (SQL-built and Python-built) for the next flush; nothing is copied."""
        from integrations.store._store import _event_rows

        cols = ", ".join(EVENT_COLUMNS)
        for table in tables:
            self.staged.append(f"SELECT rid + {first} AS rid, out, pos, {cols}, "
                               f"{self.precedence}::INTEGER AS source_precedence FROM {table}")
            self.tables.append(table)
        if py_rows:
            rows = _event_rows([ev for *_k, ev in py_rows], self.mapping.source, self.precedence).drop_columns(["seq"])
            rows = rows.append_column("rid", pa.array([r[0] + first for r in py_rows], pa.int64()))
            rows = rows.append_column("out", pa.array([r[1] for r in py_rows], pa.int32()))
            rows = rows.append_column("pos", pa.array([r[2] for r in py_rows], pa.int64()))
            self.conn.register("_pyrows", rows)
            self.conn.execute(f"CREATE TEMP TABLE {tag}_py AS SELECT rid, out, pos, {cols}, source_precedence FROM _pyrows")
            self.conn.unregister("_pyrows")
            self.staged.append(f"SELECT * FROM {tag}_py")
            self.tables.append(f"{tag}_py")
        added = sum(self.conn.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in tables) + len(py_rows)
        self.staged_events += added
        self.report.events += added

    # -- into the store ------------------------------------------------------------------------

    def flush(self) -> None:
        """Merge the staged events (the last of each id wins) and their dead letters in one transaction.

        The store is attached to the private database for the merge, so rows go from the batches'
        tables into `events` without a copy through Arrow or a second connection.
        """
        if not self.staged and not self.staged_rejections:
            return
        from integrations.store import EventStore

        conn = self.conn
        union = (" UNION ALL ".join(self.staged) if self.staged else
                 f"SELECT 0::BIGINT AS rid, 0::INTEGER AS out, 0::BIGINT AS pos, * FROM ({_empty_rows_sql()}) LIMIT 0")
        conn.execute(f"CREATE OR REPLACE TEMP VIEW _staged AS {union}")
        duplicates = conn.execute("SELECT count(*) - count(DISTINCT event_id) FROM _staged").fetchall()[0][0]
        last_wins = ("QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY rid DESC, out DESC, pos DESC) = 1"
                     if duplicates else "")
        conn.execute(f"CREATE OR REPLACE TEMP VIEW _merge AS SELECT * EXCLUDE (rid, out, pos) FROM _staged {last_wins}")
        with self.store.attached(conn):
            counts = EventStore.merge_staged(conn, "_merge", run_id=self.run_id)
            if self.keep_dead_letters and self.staged_rejections:
                self.store.add_dead_letters(self.tenant_id, self.mapping.plugin, self.mapping.source,
                                            [r.as_dict() for r in self.staged_rejections], kind="mapping",
                                            run_id=self.run_id, conn=conn)
        conn.execute("DROP VIEW _merge")
        conn.execute("DROP VIEW _staged")
        for table in self.tables:
            conn.execute(f"DROP TABLE {table}")
        self.report.inserted += counts.inserted
        self.report.updated += counts.updated
        self.report.unchanged += counts.unchanged
        self.report.flushes += 1
        self.staged, self.tables = [], []
        self.staged_events = 0
        self.staged_rejections = []


def _empty_rows_sql() -> str:
    """A typed, empty relation with the staged event columns (the types the row queries produce)."""
    return ("SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS tenant_id, NULL::VARCHAR AS event_type, "
            "NULL::VARCHAR AS kind, NULL::VARCHAR AS severity, NULL::VARCHAR AS title, "
            "NULL::TIMESTAMPTZ AS occurred_at, NULL::VARCHAR AS source_integration, NULL::VARCHAR AS source, "
            "NULL::VARCHAR AS external_id, NULL::VARCHAR[] AS resource_ids, NULL::VARCHAR[] AS hint_values, "
            "NULL::VARCHAR AS attributes, NULL::VARCHAR AS integration_context, NULL::VARCHAR AS content_hash, "
            "NULL::INTEGER AS source_precedence")


def map_file(mapping: CompiledMapping, path, *, tenant_id: str, store, run_id: str | None = None,
             batch_size: int = 100_000, batch_bytes: int = 24 << 20, memory_limit: str = "448MB",
             flush_events: int = 100_000, keep_dead_letters: bool = True) -> FileReport:
    """Map a JSON Lines file and upsert the events into `store`, batch by batch, memory bounded.

    Gives the store exactly what `pipeline.ingest` with the Python engine gives it (raw records
    are not kept). A file that is one JSON document goes through `SqlEngine.map`.
    """
    if not _is_json_lines(path):
        return _map_document(mapping, Path(path), tenant_id=tenant_id, store=store, run_id=run_id)
    mapper = _FileMapper(mapping, tenant_id=tenant_id, store=store, run_id=run_id, memory_limit=memory_limit,
                         flush_events=flush_events, keep_dead_letters=keep_dead_letters)
    try:
        for first, numbers, array in _line_batches(path, batch_size, batch_bytes):
            mapper.map_batch(first, numbers, array)
        mapper.flush()
    finally:
        mapper.close()
    return mapper.report


def _map_document(mapping: CompiledMapping, path: Path, *, tenant_id: str, store, run_id: str | None) -> FileReport:
    from integrations.mapping._sql import SqlEngine
    from integrations.pipeline import map_items, store_result
    from integrations.records import iter_records

    report = FileReport()
    result = map_items(SqlEngine(), mapping, iter_records(path), tenant_id)
    src = store_result(store, tenant_id=tenant_id, plugin=mapping.plugin, source=mapping.source,
                       result=result, run_id=run_id, precedence=int(getattr(mapping.spec, "precedence", 100)))
    for key in ("read", "mapped", "filtered", "rejected", "events", "inserted", "updated", "unchanged"):
        setattr(report, key, getattr(src, key))
    report.rejections = result.rejections
    report.flushes = 1
    return report


__all__ = ["FileReport", "map_file"]
