"""Sample records kept in a DuckDB database of the preview's own (never the event store).

A `SampleSet` holds any number of record sets, one per (tenant, plugin, source), each numbered
from 0 (`record_index`). Records live as compact JSON text in one table, so 100,000 of them cost
DuckDB memory, not Python objects: pages are parsed when they are shown, and the whole-set
figures run as SQL over the table (`_wholeset`). Files load from `data/samples/<tenant>/<plugin>/
<source>.jsonl` or from uploads (a JSON object, a JSON array or JSON Lines).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pandas as pd
import pyarrow as pa

from integrations.errors import UsageError
from integrations.paths import samples_dir
from integrations.store._connection import in_transaction


class SampleKey(NamedTuple):
    """Which record set: the tenant, the plugin and the source."""

    tenant: str
    plugin: str
    source: str

    def __str__(self) -> str:
        return f"{self.tenant}/{self.plugin}/{self.source}"


@dataclass(frozen=True)
class SampleFile:
    """A bundled sample file and the set it fills."""

    key: SampleKey
    path: Path


def available_samples(root: Path | None = None) -> list[SampleFile]:
    """Every bundled `data/samples/<tenant>/<plugin>/<source>.jsonl`, sorted."""
    root = root or samples_dir()
    if not root.exists():
        return []
    return [SampleFile(SampleKey(p.parent.parent.name, p.parent.name, p.stem), p)
            for p in sorted(root.glob("*/*/*.jsonl"))]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parse_records(data: bytes | str, name: str = "<upload>") -> list[Any]:
    """Records of an upload: one JSON object, a JSON array, or JSON Lines.

    A JSON Lines line that is not JSON stops the upload with its line number: an upload is
    something a person picked, so telling them beats keeping half of it.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise UsageError(f"{name} is not UTF-8 text: {err}", file=name) from None
    text = data.strip()
    if not text:
        raise UsageError(f"{name} is empty", file=name)
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    else:
        return whole if isinstance(whole, list) else [whole]
    records = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as err:
            raise UsageError(f"{name} line {line_no} is not JSON: {err.args[0] if err.args else err}",
                             file=name, line=line_no,
                             hint="upload one JSON object, a JSON array, or JSON Lines (one object per line)") from None
    return records


def _lines_of(path: Path) -> Iterator[str]:
    """Non-blank lines of a JSON Lines file, as they are (DuckDB checks them)."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                yield line


class SampleSet:
    """Record sets to preview mappings against, in DuckDB (in memory, or a file the workbench owns)."""

    def __init__(self, database: str | Path = ":memory:") -> None:
        self.database = str(database)
        self._conn = _connect(self.database)
        self._lock = threading.RLock()
        self._version: dict[SampleKey, int] = {}
        with self._lock:
            self._conn.execute("""CREATE TABLE IF NOT EXISTS samples (
                tenant VARCHAR, plugin VARCHAR, source VARCHAR, rid BIGINT, rec VARCHAR)""")
            self._conn.execute("""CREATE TABLE IF NOT EXISTS sample_sets (
                tenant VARCHAR, plugin VARCHAR, source VARCHAR, origin VARCHAR, records BIGINT,
                PRIMARY KEY (tenant, plugin, source))""")
            for row in self._conn.execute("SELECT tenant, plugin, source FROM sample_sets").fetchall():
                self._version[SampleKey(*row)] = 1

    # -- loading -----------------------------------------------------------------------------

    def load(self, tenant: str, plugin: str, source: str, records: Iterable[Any], *, origin: str = "records",
             append: bool = False) -> int:
        """Put records into a set (replacing it unless `append`); returns how many the set holds."""
        return self._store(SampleKey(tenant, plugin, source), (_compact(r) for r in records), origin, append,
                           checked=True)

    def load_lines(self, tenant: str, plugin: str, source: str, lines: Iterable[str], *, origin: str = "lines",
                   append: bool = False) -> int:
        """JSON Lines text, line by line, without parsing it in Python (a line that is not JSON is kept
        as `{"unparsed_line": ...}`, as the runner keeps it)."""
        texts = (line.strip() for line in lines)
        return self._store(SampleKey(tenant, plugin, source), (t for t in texts if t), origin, append, checked=False)

    def load_file(self, path: str | Path, tenant: str, plugin: str, source: str, *, append: bool = False) -> int:
        """A JSON Lines file (or a JSON object or array) into a set."""
        path = Path(path)
        if not path.exists():
            raise UsageError(f"no sample file at {path}", file=str(path))
        head = path.open(encoding="utf-8").read(1).strip() if path.stat().st_size else ""
        if path.suffix == ".json" or head == "[":
            return self.load(tenant, plugin, source, parse_records(path.read_bytes(), str(path)),
                             origin=str(path), append=append)
        return self._store(SampleKey(tenant, plugin, source), _lines_of(path), str(path), append, checked=False)

    def load_samples(self, tenant: str, plugin: str, source: str, root: Path | None = None) -> int:
        """The bundled `data/samples/<tenant>/<plugin>/<source>.jsonl`."""
        path = (root or samples_dir()) / tenant / plugin / f"{source}.jsonl"
        return self.load_file(path, tenant, plugin, source)

    def ensure(self, tenant: str, plugin: str, source: str, root: Path | None = None) -> int:
        """The set's size, loading the bundled samples first if the set is not there yet."""
        key = SampleKey(tenant, plugin, source)
        if key not in self._version:
            path = (root or samples_dir()) / tenant / plugin / f"{source}.jsonl"
            if not path.exists():
                return 0
            return self.load_samples(tenant, plugin, source, root)
        return self.count(tenant, plugin, source)

    def _store(self, key: SampleKey, texts: Iterable[str], origin: str, append: bool, *, checked: bool) -> int:
        with self._lock:
            conn = self._conn
            with in_transaction(conn):
                if not append:
                    conn.execute("DELETE FROM samples WHERE tenant = ? AND plugin = ? AND source = ?", list(key))
                start = conn.execute("SELECT count(*) FROM samples WHERE tenant = ? AND plugin = ? AND source = ?",
                                     list(key)).fetchall()[0][0]
                batch: list[str] = []
                for text in texts:
                    batch.append(text)
                    if len(batch) >= 20_000:
                        start = self._insert(key, batch, start, checked)
                        batch = []
                if batch:
                    start = self._insert(key, batch, start, checked)
                conn.execute("INSERT OR REPLACE INTO sample_sets VALUES (?, ?, ?, ?, ?)", [*key, origin, start])
            self._version[key] = self._version.get(key, 0) + 1
            return start

    def _insert(self, key: SampleKey, texts: list[str], start: int, checked: bool) -> int:
        table = pa.table({"rid": pa.array(range(start, start + len(texts)), pa.int64()),
                          "rec": pa.array(texts, pa.string())})
        self._conn.register("_incoming_samples", table)
        try:
            # A line that is not JSON is kept as {"unparsed_line": ...}, as the runner keeps it.
            rec = "rec" if checked else "CASE WHEN json_valid(rec) THEN rec ELSE json_object('unparsed_line', rec)::VARCHAR END"
            self._conn.execute(f"INSERT INTO samples SELECT ?, ?, ?, rid, {rec} FROM _incoming_samples", list(key))
        finally:
            self._conn.unregister("_incoming_samples")
        return start + len(texts)

    # -- reading -----------------------------------------------------------------------------

    def keys(self) -> list[SampleKey]:
        """The sets loaded so far."""
        with self._lock:
            rows = self._conn.execute("SELECT tenant, plugin, source FROM sample_sets ORDER BY ALL").fetchall()
        return [SampleKey(*row) for row in rows]

    def version(self, tenant: str, plugin: str, source: str) -> int:
        """Changes each time the set is loaded again (whole-set caches key on it)."""
        return self._version.get(SampleKey(tenant, plugin, source), 0)

    def count(self, tenant: str, plugin: str, source: str) -> int:
        with self._lock:
            rows = self._conn.execute("SELECT records FROM sample_sets WHERE tenant = ? AND plugin = ? AND source = ?",
                                      [tenant, plugin, source]).fetchall()
        return rows[0][0] if rows else 0

    def records(self, tenant: str, plugin: str, source: str, indices: Iterable[int] | None = None, *,
                limit: int | None = None, offset: int = 0) -> list[tuple[int, Any]]:
        """(record_index, record) pairs: the given indices (in that order), or a page in index order."""
        params: list[Any] = [tenant, plugin, source]
        sql = "SELECT rid, rec FROM samples WHERE tenant = ? AND plugin = ? AND source = ?"
        wanted: list[int] | None = None
        if indices is not None:
            wanted = [int(i) for i in indices]
            if not wanted:
                return []
            sql += " AND rid IN (SELECT unnest(?::BIGINT[]))"
            params.append(wanted)
        sql += " ORDER BY rid"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        found = {rid: json.loads(rec) for rid, rec in rows}
        order = wanted if wanted is not None else [rid for rid, _ in rows]
        return [(rid, found[rid]) for rid in order if rid in found]

    def record(self, tenant: str, plugin: str, source: str, index: int) -> Any:
        found = self.records(tenant, plugin, source, [index])
        if not found:
            raise UsageError(f"no record {index} in {tenant}/{plugin}/{source}")
        return found[0][1]

    def page(self, tenant: str, plugin: str, source: str, *, selected: Iterable[int] = (),
             limit: int = 200) -> list[tuple[int, Any]]:
        """A bounded page for the live preview: the selected records first, then the set in order."""
        chosen = list(dict.fromkeys(int(i) for i in selected))[:limit]
        out = self.records(tenant, plugin, source, chosen)
        have = {rid for rid, _ in out}
        if len(out) < limit:
            for rid, record in self.records(tenant, plugin, source, limit=limit):
                if len(out) >= limit:
                    break
                if rid not in have:
                    out.append((rid, record))
        return out

    def search(self, tenant: str, plugin: str, source: str, text: str = "", *, limit: int = 100,
               offset: int = 0, width: int = 160) -> pd.DataFrame:
        """Records whose JSON contains `text` (case-insensitive): record_index and the start of the record."""
        sql = (f"SELECT rid AS record_index, left(rec, {int(width)}) AS record FROM samples "
               "WHERE tenant = ? AND plugin = ? AND source = ?")
        params: list[Any] = [tenant, plugin, source]
        if text:
            sql += " AND contains(lower(rec), lower(?))"
            params.append(text)
        sql += f" ORDER BY rid LIMIT {int(limit)} OFFSET {int(offset)}"
        with self._lock:
            return self._conn.execute(sql, params).df()

    def count_matching(self, tenant: str, plugin: str, source: str, text: str = "") -> int:
        sql = "SELECT count(*) FROM samples WHERE tenant = ? AND plugin = ? AND source = ?"
        params: list[Any] = [tenant, plugin, source]
        if text:
            sql += " AND contains(lower(rec), lower(?))"
            params.append(text)
        with self._lock:
            return self._conn.execute(sql, params).fetchall()[0][0]

    # -- for the whole-set engine ----------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection (hold `lock` while using it)."""
        return self._conn

    def relation_sql(self, tenant: str, plugin: str, source: str) -> str:
        """A subquery giving `(rid, rec)` of one set."""
        q = [_sql_text(v) for v in (tenant, plugin, source)]
        return f"(SELECT rid, rec FROM samples WHERE tenant = {q[0]} AND plugin = {q[1]} AND source = {q[2]})"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SampleSet({self.database!r}, sets={len(self._version)})"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _connect(database: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the compiled engine's macros and functions, when it is installed."""
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(database)
    try:
        from integrations.mapping._sql import connect
    except ImportError:  # the compiled engine is optional: the whole-set figures then use Python
        return conn
    return connect(conn=conn)


__all__ = ["SampleFile", "SampleKey", "SampleSet", "available_samples", "parse_records"]
