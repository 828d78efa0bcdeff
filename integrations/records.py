"""Reading input records: one JSON object, a JSON array, or JSON Lines, from a file or stdin.

A line that is not JSON does not stop the batch: it comes out as a RecordError in its place
(with the line number), so callers count it as read and rejected and keep it as a dead letter.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from integrations.errors import RecordError, UsageError

Item = tuple[int, Any]  # (position, record or RecordError)


def _iter_text(text: str, file: str) -> Iterator[Item]:
    stripped = text.lstrip()
    if not stripped:
        return
    if stripped[0] in "[{":
        try:
            whole = json.loads(text)
        except ValueError:
            whole = None  # maybe JSON Lines whose lines are objects
        else:
            if isinstance(whole, list):
                yield from enumerate(whole)
            else:
                yield 0, whole
            return
    index = 0
    # JSON Lines breaks lines at "\n" only (text mode already made "\r\n" and "\r" into "\n"):
    # splitlines() would also break at U+2028, U+0085 and others, which JSON allows inside strings.
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield index, json.loads(line)
        except ValueError as err:
            yield index, RecordError(f"line {line_no} is not valid JSON: {err}", file=file, line=line_no,
                                     record_index=index, field=None, expression=line[:2000])
        index += 1


def iter_records(source: str | Path | IO[str]) -> Iterator[Item]:
    """Records of a file (`-` for stdin) with their position; unparseable lines as RecordError."""
    if hasattr(source, "read"):
        yield from _iter_text(source.read(), "<stdin>")  # type: ignore[union-attr]
        return
    if str(source) == "-":
        yield from _iter_text(sys.stdin.read(), "<stdin>")
        return
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"input file not found: {path}", file=str(path)) from None
    except UnicodeDecodeError as err:
        raise UsageError(f"input is not UTF-8 text: {err}", file=str(path)) from None
    yield from _iter_text(text, str(path))

