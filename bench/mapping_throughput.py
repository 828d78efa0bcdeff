"""Mapping throughput: the Python engine, the compiled SQL engine and DuckDB's own read floor.

    python bench/mapping_throughput.py                     # 100,000 records (make bench)
    python bench/mapping_throughput.py --records 1000000   # the compiled engine at 1,000,000
    python bench/mapping_throughput.py --json              # the table as JSON
    python bench/mapping_throughput.py --repeat 1          # one run each instead of the median of 3

It writes N records in their real shapes to JSON Lines files in a temporary folder: GitHub `push`
deliveries with 3 to 5 commits (30% of N), `pull_request` deliveries (20%) and CloudWatch Logs
events in the `{log_group, region, account_id, event}` envelope (50%), made from the shipped
samples with new ids, times and messages. To keep files small the large nested `repository`,
`sender` and `organization` objects (and a pull request's `head.repo`/`base.repo`) are trimmed to
the fields a mapping reads. N counts all records together.

Each engine maps the three files with the shipped mappings and writes the events to a fresh store
(`events written to the store`), in its own subprocess, so that its peak resident memory
(`ru_maxrss`) is its own. The Python engine reads, maps and upserts in batches of 10,000 through
`pipeline.store_result`; the compiled engine runs `_sql_file.map_files` over the three files
(DuckDB end to end, in streamed segments, each group's store merge overlapped with mapping the
next). The Python engine is measured on at most 100,000 records (`--python-max`); its rate stands
for the larger runs. The floor is the time DuckDB alone takes to read the same files and
fetch every column as Arrow: `SELECT * FROM read_json(...)` with `.arrow()`. The floor and the
compiled engine run alternately `--repeat` times (3), and each is reported by its median run
(peak memory: the largest), because this machine's speed drifts by 10-20% within minutes.

Then `integrations map` (the CLI, as a whole process) and `jq -c` with an equivalent filter each
map the first 50,000 (`--jq-records`) CloudWatch Logs events to JSON Lines on stdout, wall time
compared.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples" / "demo"
SHARES = {"push": 0.3, "pull_request": 0.2, "log_events": 0.5}
SOURCES = {"push": ("github", "push"), "pull_request": ("github", "pull_request"),
           "log_events": ("cloudwatch", "log_events")}
TENANT = "bench"

# -- the generator ------------------------------------------------------------------------------


def _first(path: Path) -> dict:
    with path.open(encoding="utf-8") as handle:
        return json.loads(handle.readline())


def _trim_repo(repo: dict | None) -> dict | None:
    if not isinstance(repo, dict):
        return repo
    owner = repo.get("owner") or {}
    return {"id": repo.get("id"), "name": repo.get("name"), "full_name": repo.get("full_name"),
            "private": repo.get("private"), "owner": {"login": owner.get("login"), "id": owner.get("id"),
                                                      "name": owner.get("name")},
            "html_url": repo.get("html_url"), "default_branch": repo.get("default_branch")}


def _trim_user(user: dict | None) -> dict | None:
    return {"login": user.get("login"), "id": user.get("id"), "type": user.get("type")} if isinstance(user, dict) else user


class Generator:
    """Records shaped like the shipped samples, with fresh ids, times and messages."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.push = _first(SAMPLES / "github" / "push.jsonl")
        self.pr = _first(SAMPLES / "github" / "pull_request.jsonl")
        self.log = _first(SAMPLES / "cloudwatch" / "log_events.jsonl")
        self.repos = [f"octo/service-{i}" for i in range(20)]
        self.t0 = 1714988322000

    def _sha(self) -> str:
        return "%040x" % self.rng.getrandbits(160)

    def _iso(self, ms: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + "Z"

    def push_record(self, i: int) -> dict:
        rec = copy.deepcopy(self.push)
        full = self.rng.choice(self.repos)
        repo = _trim_repo(rec["repository"])
        repo["full_name"], repo["name"] = full, full.split("/")[1]
        repo["html_url"] = f"https://github.com/{full}"
        rec["repository"] = repo
        rec["sender"] = _trim_user(rec.get("sender"))
        rec["organization"] = _trim_user(rec.get("organization"))
        template = rec["commits"][0]
        commits = []
        ms = self.t0 + i * 1000
        for k in range(self.rng.randint(3, 5)):
            c = copy.deepcopy(template)
            c["id"] = c["tree_id"] = self._sha()
            c["message"] = f"Change {i}.{k}: {self.rng.choice(['fix retry loop', 'bump deps', 'add metrics'])}\n\nDetails {i}"
            c["timestamp"] = self._iso(ms + k)
            c["url"] = f"https://github.com/{full}/commit/{c['id']}"
            c["distinct"] = self.rng.random() > 0.1
            c["added"] = [f"src/new_{k}.py"] * self.rng.randint(0, 2)
            c["modified"] = [f"src/mod_{k}.py"] * self.rng.randint(0, 3)
            commits.append(c)
        rec["commits"] = commits
        rec["head_commit"] = commits[-1]
        rec["before"], rec["after"] = self._sha(), commits[-1]["id"]
        rec["ref"] = self.rng.choice(["refs/heads/main", "refs/heads/feature/x", "refs/tags/v1.2.3"])
        rec["compare"] = f"https://github.com/{full}/compare/{rec['before'][:12]}...{rec['after'][:12]}"
        return rec

    def pr_record(self, i: int) -> dict:
        rec = copy.deepcopy(self.pr)
        full = self.rng.choice(self.repos)
        repo = _trim_repo(rec["repository"])
        repo["full_name"], repo["name"] = full, full.split("/")[1]
        rec["repository"] = repo
        rec["sender"] = _trim_user(rec.get("sender"))
        rec["organization"] = _trim_user(rec.get("organization"))
        pr = rec["pull_request"]
        for side in ("head", "base"):
            pr[side]["repo"] = _trim_repo(pr[side].get("repo"))
            pr[side]["user"] = _trim_user(pr[side].get("user"))
            pr[side]["sha"] = self._sha()
        number = 1 + i
        ms = self.t0 + i * 1000
        action = self.rng.choice(["opened", "closed", "synchronize", "reopened", "edited"])
        rec["action"], rec["number"], pr["number"] = action, number, number
        pr["title"] = f"PR {number}: {self.rng.choice(['Retry payments', 'Add tracing', 'Fix flaky test'])}"
        pr["created_at"] = self._iso(ms)
        pr["updated_at"] = self._iso(ms + 60_000)
        merged = action == "closed" and self.rng.random() > 0.3
        pr["merged"] = merged
        pr["merged_at"] = self._iso(ms + 120_000) if merged else None
        pr["closed_at"] = self._iso(ms + 120_000) if action == "closed" else None
        pr["merge_commit_sha"] = self._sha()
        pr["html_url"] = f"https://github.com/{full}/pull/{number}"
        pr["labels"] = [{"id": k, "name": name} for k, name in enumerate(self.rng.sample(["bug", "infra", "payments", "ci"], 2))]
        return rec

    def log_record(self, i: int) -> dict:
        rec = copy.deepcopy(self.log)
        ms = self.t0 + i * 37
        rid = str(uuid.UUID(int=self.rng.getrandbits(128)))
        kind = self.rng.random()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
        if kind < 0.25:
            message = f"START RequestId: {rid} Version: $LATEST\n"
        elif kind < 0.5:
            message = f"END RequestId: {rid}\n"
        elif kind < 0.7:
            message = (f"REPORT RequestId: {rid}\tDuration: {self.rng.uniform(5, 3000):.2f} ms\tBilled Duration: "
                       f"{self.rng.randint(5, 3000)} ms\tMemory Size: 512 MB\tMax Memory Used: 153 MB\t\n")
        elif kind < 0.9:
            message = f"[INFO]\t{stamp}\t{rid}\tcharge authorized order={i}\n"
        elif kind < 0.97:
            message = f"[ERROR]\t{stamp}\t{rid}\tTimeoutError: payments-gateway call exceeded 2000 ms (attempt 3/3)\n"
        else:
            message = f"{stamp} {rid} Task timed out after 6.01 seconds\n\n"
        rec["log_group"] = self.rng.choice(["/aws/lambda/checkout-api", "/aws/lambda/payments", "/ecs/orders"])
        event = rec["event"]
        event["timestamp"], event["ingestionTime"] = ms, ms + self.rng.randint(100, 900)
        event["message"] = message
        event["eventId"] = f"{ms:020d}{i:036d}"
        return rec

    def write(self, folder: Path, total: int) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        makers = {"push": self.push_record, "pull_request": self.pr_record, "log_events": self.log_record}
        counts = {"push": int(total * SHARES["push"]), "pull_request": int(total * SHARES["pull_request"])}
        counts["log_events"] = total - counts["push"] - counts["pull_request"]
        files = {}
        for name, count in counts.items():
            path = folder / f"{name}.jsonl"
            with path.open("w", encoding="utf-8") as out:
                for i in range(count):
                    out.write(json.dumps(makers[name](i), separators=(",", ":")) + "\n")
            files[name] = path
        return files


def _head(files: dict[str, Path], folder: Path, total: int) -> dict[str, Path]:
    """The first lines of each file, in the same shares, for the Python engine's capped run."""
    folder.mkdir(parents=True, exist_ok=True)
    counts = {"push": int(total * SHARES["push"]), "pull_request": int(total * SHARES["pull_request"])}
    counts["log_events"] = total - counts["push"] - counts["pull_request"]
    out_files = {}
    for name, path in files.items():
        target = folder / path.name
        with path.open(encoding="utf-8") as src, target.open("w", encoding="utf-8") as dst:
            for _i, line in zip(range(counts[name]), src):
                dst.write(line)
        out_files[name] = target
    return out_files


# -- the children (one engine each) ----------------------------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(engine: str, folder: Path, store_path: Path) -> dict:
    files = {name: folder / f"{name}.jsonl" for name in SOURCES}
    records = sum(1 for path in files.values() for _ in path.open(encoding="utf-8"))
    started = time.perf_counter()
    events = 0
    if engine == "floor":
        import duckdb

        conn = duckdb.connect()
        for path in files.values():
            table = conn.sql(f"SELECT * FROM read_json('{path}', format='newline_delimited')").arrow()
            if hasattr(table, "read_all"):  # duckdb 2 returns a RecordBatchReader: fetch it all
                table = table.read_all()
            events += table.num_rows
            del table
    else:
        from integrations.mapping import load_mapping
        from integrations.store import EventStore

        store = EventStore(store_path)
        store.initialize()
        mappings = {name: load_mapping(ROOT / "mappings" / SOURCES[name][0] / f"{SOURCES[name][1]}.yaml")
                    for name in files}
        if engine == "sql":
            from integrations.mapping._sql_file import map_files

            reports = map_files([(mappings[name], path) for name, path in files.items()], tenant_id=TENANT,
                                store=store)
            events = sum(report.events for report in reports)
        else:
            events = sum(_python_engine(store, name, mappings[name], path) for name, path in files.items())
    seconds = time.perf_counter() - started
    return {"engine": engine, "records": records, "events": events, "seconds": seconds, "peak_mb": _peak_mb()}


def _python_engine(store, name: str, mapping, path: Path) -> int:
    """Read, map and upsert in batches of 10,000 through `pipeline.store_result`; the events written."""
    from integrations.mapping import PythonEngine
    from integrations.pipeline import map_items, store_result
    from integrations.records import iter_records

    plugin, source = SOURCES[name]
    python = PythonEngine()
    events = 0
    batch: list = []

    def flush(items):
        result = map_items(python, mapping, items, TENANT)
        return store_result(store, tenant_id=TENANT, plugin=plugin, source=source, result=result,
                            precedence=mapping.spec.precedence).events

    for item in iter_records(path):
        batch.append(item)
        if len(batch) >= 10_000:
            events += flush(batch)
            batch = []
    if batch:
        events += flush(batch)
    return events


def run_child(engine: str, folder: Path, store_path: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", engine, "--dir", str(folder),
           "--store", str(store_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- jq against `integrations map` -----------------------------------------------------------------

JQ_LOG_FILTER = r"""
def svc: (.log_group | capture("^/(?:aws/lambda|aws/ecs|ecs)/(?<s>[^/]+)") | .s | ascii_downcase) // null;
def firstline: ((.event.message // "") | capture("^\\s*(?<l>[^\\r\\n]{0,200})") | .l) // null;
def level: ((.event.message // "") as $m
  | if ($m | test("task timed out"; "i")) then "ERROR"
    else (($m | capture("(?:^|[\\s\\[\\]\"{:=,|])(?<l>fatal|critical|error|warn|warning|info|debug|trace)(?:$|[\\s\\[\\]\",}:|])"; "i") | .l | ascii_upcase) // null) end);
def rid: ((.event.message // "") | (capture("request[ _-]?id\"?[:=\\s]+\"?(?<r>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"; "i") | .r) // null);
def sev: ((.event.message // "") as $m
  | if ($m | test("(?:^|[\\s\\[\\]\"{:=,|])(fatal|critical)(?:$|[\\s\\[\\]\",}:|])"; "i")) then "high"
    elif ($m | test("task timed out|runtime exited|out of memory|Runtime\\.\\w+Error"; "i")) or ($m | test("(?:^|[\\s\\[\\]\"{:=,|])(error)(?:$|[\\s\\[\\]\",}:|])"; "i")) then "medium"
    elif ($m | test("(?:^|[\\s\\[\\]\"{:=,|])(warn|warning)(?:$|[\\s\\[\\]\",}:|])"; "i")) then "low" else "info" end);
select(.event) | {
  tenant_id: "bench", event_type: "system", kind: "log", severity: sev,
  title: "\(.log_group) \(.event.logStreamName): \(firstline)",
  occurred_at: (.event.timestamp / 1000 | todate),
  resource_ids: ([.log_group] + (if svc then ["service:\(svc)"] else [] end)),
  attributes: ({log_group, log_stream: .event.logStreamName, message: .event.message, level: level,
                request_id: rid, region, account_id, service: svc} | with_entries(select(.value != null))),
  integration_context: {source_integration: "cloudwatch", external_id: .event.eventId,
                        original_timestamp: (.event.timestamp | tostring)}
}
"""


def whole_process(cmd: list[str], out_path: Path) -> float:
    started = time.perf_counter()
    with out_path.open("w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True, cwd=ROOT, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {done.stderr[-2000:]}")
    return seconds


def jq_comparison(log_file: Path, folder: Path, limit: int) -> dict | None:
    jq = shutil.which("jq") or ("/usr/bin/jq" if Path("/usr/bin/jq").exists() else None)
    integrations = Path(sys.executable).with_name("integrations")
    if jq is None or not integrations.exists():
        return None
    head = folder / "jq_input.jsonl"
    lines = 0
    with log_file.open(encoding="utf-8") as src, head.open("w", encoding="utf-8") as dst:
        for lines, line in enumerate(src, start=1):
            dst.write(line)
            if lines >= limit:
                break
    log_file = head
    cli = whole_process([str(integrations), "map", "--plugin", "cloudwatch", "--source", "log_events",
                         "--input", str(log_file), "--tenant", TENANT], folder / "cli.jsonl")
    jq_s = whole_process([jq, "-c", JQ_LOG_FILTER, str(log_file)], folder / "jq.jsonl")
    return {"records": lines, "integrations_map_s": cli, "jq_s": jq_s, "ratio_jq_over_map": jq_s / cli}


def repeated_runs(work: Path, *, repeat: int, with_sql: bool) -> tuple[dict, dict | None, dict[str, list[float]]]:
    """The floor and the compiled engine, alternately `repeat` times; each the run of median time.

    This machine's speed drifts 10-20% within minutes, and a single run of each put the ratio
    anywhere between 1.7 and 2.4. Alternating the two and taking medians compares them under the
    same conditions; the peak memory reported is the largest of the runs.
    """
    results: dict[str, list[dict]] = {"floor": [], "sql": []}
    for _ in range(repeat):
        results["floor"].append(run_child("floor", work / "all", work / "floor.duckdb"))
        if with_sql:
            results["sql"].append(run_child("sql", work / "all", work / "sql.duckdb"))
    picked: dict[str, dict | None] = {}
    for engine, runs in results.items():
        if not runs:
            picked[engine] = None
            continue
        ordered = sorted(runs, key=lambda r: r["seconds"])
        picked[engine] = dict(ordered[(len(ordered) - 1) // 2], peak_mb=max(r["peak_mb"] for r in runs))
    times = {engine: [round(r["seconds"], 2) for r in runs] for engine, runs in results.items()}
    return picked["floor"], picked["sql"], times


# -- the table ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--python-max", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=3,
                        help="interleaved runs of the floor and the compiled engine; the median is reported")
    parser.add_argument("--engines", default="python,sql")
    parser.add_argument("--no-jq", action="store_true")
    parser.add_argument("--jq-records", type=int, default=50_000, help="log events for the jq comparison")
    parser.add_argument("--child")
    parser.add_argument("--dir")
    parser.add_argument("--store")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, Path(args.dir), Path(args.store))))
        return 0
    work = Path(tempfile.mkdtemp(prefix="mapping-bench-"))
    try:
        files = Generator().write(work / "all", args.records)
        rows = []
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        floor, sql, runs = repeated_runs(work, repeat=max(1, args.repeat), with_sql="sql" in engines)
        python = None
        if "python" in engines:
            n = min(args.records, args.python_max)
            folder = work / "all" if n == args.records else work / "python"
            if n != args.records:
                _head(files, folder, n)
                python_floor = run_child("floor", folder, work / "floor2.duckdb")
            else:
                python_floor = floor
            python = run_child("python", folder, work / "python.duckdb")
            python["floor_seconds"] = python_floor["seconds"]
            rows.append(python)
        if sql is not None:
            sql["floor_seconds"] = floor["seconds"]
            rows.append(sql)
        floor["floor_seconds"] = floor["seconds"]
        rows.append(floor)
        py_rate = python["records"] / python["seconds"] if python else None
        table = []
        for row in rows:
            rate = row["records"] / row["seconds"]
            floor_rate = row["records"] / row["floor_seconds"]
            table.append({"engine": row["engine"], "records": row["records"], "records_per_s": round(rate),
                          "peak_mb": round(row["peak_mb"], 1),
                          "ratio_vs_python": round(rate / py_rate, 2) if py_rate else None,
                          "ratio_vs_floor": round(floor_rate / rate, 2)})
        jq = None if args.no_jq else jq_comparison(files["log_events"], work, args.jq_records)
        if args.json:
            print(json.dumps(table))
        else:
            print(f"{'engine':<8} {'records':>10} {'records/s':>11} {'peak MB':>9} {'x python':>9} {'x floor':>8}")
            for t in table:
                print(f"{t['engine']:<8} {t['records']:>10,} {t['records_per_s']:>11,} {t['peak_mb']:>9} "
                      f"{t['ratio_vs_python'] if t['ratio_vs_python'] is not None else '-':>9} {t['ratio_vs_floor']:>8}")
            print("x python: records/s over the Python engine's; x floor: time over DuckDB's read_json + .arrow()")
            if len(runs["floor"]) > 1:
                print(f"sql and floor: median of {len(runs['floor'])} interleaved runs; " + "; ".join(
                    f"{engine} {', '.join(f'{t:.2f}' for t in times)} s" for engine, times in runs.items() if times))
            if jq:
                print(f"integrations map vs jq -c on {jq['records']:,} log events (whole processes): "
                      f"{jq['integrations_map_s']:.2f} s vs {jq['jq_s']:.2f} s")
        if args.json:
            print(json.dumps({"jq": jq, "run_seconds": runs}), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
