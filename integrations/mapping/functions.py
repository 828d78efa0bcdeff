"""The custom JMESPath functions that mappings may call.

They live in one `Functions` subclass and reach jmespath through `Options(custom_functions=...)`,
built once per engine: no global registry is patched. Each function tolerates `null` where a
source field may be absent, returning `null` (or skipping it), so that optional fields never
reject a record by themselves. The SQL engine implements the same functions with the same rules.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from datetime import datetime, timezone
from typing import Any

import jmespath
from jmespath import functions

from integrations.errors import RecordError


def _iso_from_epoch_seconds(seconds: float, *, function: str, value: Any) -> str:
    """`value` is what the mapping passed to `function`, named in the error when no date can hold it."""
    try:
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):  # the C library's range, which raises OSError on Linux
        raise RecordError(f"{function}(): {value!r} is not a time between the years 1 and 9999") from None
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> str:
    """How a value reads inside `concat`/`format`: null is empty, others as JSON would print."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class MappingFunctions(functions.Functions):
    """Functions available in every mapping expression (documented in the README)."""

    @functions.signature({"types": ["number", "null"]})
    def _func_from_epoch(self, seconds):
        """ISO-8601 UTC from epoch seconds: `from_epoch(\\`1700000000\\`)`."""
        return None if seconds is None else _iso_from_epoch_seconds(seconds, function="from_epoch", value=seconds)

    @functions.signature({"types": ["number", "null"]})
    def _func_from_epoch_ms(self, millis):
        """ISO-8601 UTC from epoch milliseconds (CloudWatch Logs timestamps)."""
        if millis is None:
            return None
        try:
            seconds = millis / 1000.0
        except OverflowError:  # an integer too large for a float
            seconds = float("inf")
        return _iso_from_epoch_seconds(seconds, function="from_epoch_ms", value=millis)

    @functions.signature({"types": ["string", "null"]})
    def _func_lower(self, text):
        """Lower case; null stays null."""
        return None if text is None else text.lower()

    @functions.signature({"types": ["string", "null"]})
    def _func_upper(self, text):
        """Upper case; null stays null."""
        return None if text is None else text.upper()

    @functions.signature({"types": ["string", "null"]}, {"types": ["string"]})
    def _func_split(self, text, separator):
        """Split a string on a literal separator; null stays null."""
        if text is None:
            return None
        if separator == "":
            raise RecordError("split() needs a non-empty separator")
        return text.split(separator)

    @functions.signature({"types": ["string", "null"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_replace(self, text, old, new):
        """Replace every literal occurrence of `old` by `new`; null stays null."""
        return None if text is None else text.replace(old, new)

    @functions.signature({"types": [], "variadic": True})
    def _func_concat(self, *values):
        """Join values as text; null counts as an empty string."""
        return "".join(_text(v) for v in values)

    @functions.signature({"types": ["string"]}, {"types": [], "variadic": True})
    def _func_format(self, template, *values):
        """`format('{} deployed to {}', a, b)`: each `{}` takes the next value as text."""
        parts = template.split("{}")
        if len(parts) - 1 != len(values):
            raise RecordError(
                f"format() template has {len(parts) - 1} placeholders but {len(values)} values were given"
            )
        out = [parts[0]]
        for value, part in zip(values, parts[1:]):
            out.append(_text(value))
            out.append(part)
        return "".join(out)

    @functions.signature({"types": []}, {"types": []})
    def _func_default(self, value, fallback):
        """`value` unless it is null, then `fallback` (unlike `||`, keeps `false`, 0 and '')."""
        return fallback if value is None else value

    @functions.signature({"types": ["string", "null"]})
    def _func_from_json(self, text):
        """Parse a JSON string (CloudTrail log messages, alarm history data); null stays null."""
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as err:
            raise RecordError(f"from_json(): not valid JSON ({err.msg}, char {err.pos})") from None

    @functions.signature({"types": ["array", "null"]}, {"types": ["array", "null"]})
    def _func_zip(self, left, right):
        """Pair parallel lists (GetMetricData Timestamps and Values): `[[l0, r0], [l1, r1], ...]`."""
        if left is None or right is None:
            return None
        return [[a, b] for a, b in zip(left, right)]

    @functions.signature({"types": ["string", "null"]}, {"types": ["string"]})
    def _func_regex_extract(self, text, pattern):
        """First capture group (or the whole match) of `pattern` in `text`; null when no match."""
        if text is None:
            return None
        try:
            match = re.search(pattern, text)
        except re.error as err:
            raise RecordError(f"regex_extract(): bad pattern {pattern!r}: {err}") from None
        if match is None:
            return None
        return match.group(1) if match.groups() else match.group(0)

    @functions.signature({"types": ["string", "null"]})
    def _func_gunzip_base64(self, text):
        """Decode base64, then gunzip, then UTF-8 (the `awslogs.data` of a log subscription)."""
        if text is None:
            return None
        try:
            return gzip.decompress(base64.b64decode(text, validate=True)).decode("utf-8")
        except Exception as err:  # binascii.Error, OSError, UnicodeDecodeError, EOFError
            raise RecordError(f"gunzip_base64(): cannot decode ({type(err).__name__})") from None

    @functions.signature({"types": [], "variadic": True})
    def _func_coalesce(self, *values):
        """First value that is not null (like SQL COALESCE)."""
        for value in values:
            if value is not None:
                return value
        return None


CUSTOM_FUNCTION_NAMES: tuple[str, ...] = tuple(
    sorted(name for name in MappingFunctions.FUNCTION_TABLE if not hasattr(functions.Functions, f"_func_{name}"))
)
ALL_FUNCTION_NAMES: tuple[str, ...] = tuple(sorted(MappingFunctions.FUNCTION_TABLE))

# One Options object for every engine: custom functions are scoped here, not patched in globally.
OPTIONS = jmespath.Options(custom_functions=MappingFunctions())


def function_arity(name: str) -> tuple[int, bool]:
    """(number of declared arguments, whether the last is variadic) of a function."""
    signature = MappingFunctions.FUNCTION_TABLE[name]["signature"]
    variadic = bool(signature) and bool(signature[-1].get("variadic"))
    return len(signature), variadic
