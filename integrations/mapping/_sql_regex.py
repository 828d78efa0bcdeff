"""Python `re` patterns rewritten for DuckDB's RE2, where both give the same match.

`regex_extract()` runs Python's `re` in the Python engine and RE2 in the SQL engine. The two agree
on a subset, made exact here: the pattern is parsed with Python's own parser and written back out
in RE2 syntax, and anything whose meaning could differ (look-arounds, back-references, nested
flags, repeats around capture groups) is refused, so that expression runs in Python instead.

Two differences cannot be written away, so the SQL engine guards them per value at run time and
hands the record to the Python engine when a guard fails:

- Python's `\\s`, `\\w`, `\\d`, `\\b` and case folding are Unicode-aware: the rewrite spells out
  their ASCII meaning and the subject must be ASCII (`ascii_only`).
- Python's `$` also matches just before a final newline. Where the `$` ends the pattern outside
  any capture group, `(?:\\n?\\z)` gives the same groups; elsewhere the subject must not end with a
  newline (`no_final_newline`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from re import _constants as C  # noqa: N812 - the names of sre's opcodes
from re import _parser as sre_parse

_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f "  # str.isspace() within ASCII: what Python's \s matches there
_WORD = r"0-9A-Za-z_"
_DIGIT = r"0-9"
_CLASS_OF = {
    C.CATEGORY_DIGIT: (_DIGIT, False), C.CATEGORY_NOT_DIGIT: (_DIGIT, True),
    C.CATEGORY_SPACE: (_SPACE, False), C.CATEGORY_NOT_SPACE: (_SPACE, True),
    C.CATEGORY_WORD: (_WORD, False), C.CATEGORY_NOT_WORD: (_WORD, True),
}


class Unsupported(Exception):
    """The pattern may match differently under RE2: the expression runs in Python."""


@dataclass(frozen=True)
class Re2Pattern:
    """A pattern ready for DuckDB: what to pass, which group Python returns, what to guard."""

    pattern: str
    group: int  # 1 when the pattern has groups (Python returns group 1), else 0
    group_always_set: bool  # group 1 takes part in every match (an empty result is a real '')
    never_empty: bool  # what Python returns (group 1, or the match) is never '': '' from DuckDB means no match
    no_final_newline: bool  # the subject must not end with '\n' for the rewrite to hold
    take: int | None = None  # keep the first `take` characters of group 1 (see `_Writer.trailing_take`)


def _char(code: int) -> str:
    if code < 128 and chr(code).isalnum():
        return chr(code)
    return f"\\x{{{code:x}}}"


class _Writer:
    def __init__(self, groups: int) -> None:
        self.groups = groups
        self.needs_no_final_newline = False
        self.group1_always = True
        self.group1_min_width = 0
        self.take: int | None = None

    def seq(self, items: list, *, terminal: bool, in_capture: bool, optional: bool) -> str:
        out = []
        for i, (op, av) in enumerate(items):
            last = terminal and i == len(items) - 1
            out.append(self.item(op, av, terminal=last, in_capture=in_capture, optional=optional))
        return "".join(out)

    def item(self, op, av, *, terminal: bool, in_capture: bool, optional: bool) -> str:
        if op is C.LITERAL:
            return _char(av)
        if op is C.NOT_LITERAL:
            return f"[^{_char(av)}]"
        if op is C.ANY:
            return "."
        if op is C.IN:
            return self.char_class(av)
        if op is C.AT:
            return self.at(av, terminal=terminal, in_capture=in_capture)
        if op is C.BRANCH:
            _none, branches = av
            alts = [self.seq(list(b), terminal=terminal, in_capture=in_capture, optional=True) for b in branches]
            return "(?:" + "|".join(alts) + ")"
        if op is C.SUBPATTERN:
            group, add_flags, del_flags, body = av
            if add_flags or del_flags:
                raise Unsupported("flags inside a group")
            if group is None:
                return "(?:" + self.seq(list(body), terminal=terminal, in_capture=in_capture, optional=optional) + ")"
            if group == 1 and optional:
                self.group1_always = False
            if group == 1:
                self.group1_min_width = body.getwidth()[0]
                if terminal and self.groups == 1:
                    unbounded = self.trailing_take(list(body))
                    if unbounded is not None:
                        return "(" + unbounded + ")"
            return "(" + self.seq(list(body), terminal=terminal, in_capture=True, optional=optional) + ")"
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = av
            body = list(body)
            if _has_group(body):
                raise Unsupported("a capture group inside a repeat")
            if hi is not C.MAXREPEAT and hi > 1000 or lo > 1000:
                raise Unsupported("a repeat count over 1000")
            inner = self.seq(body, terminal=False, in_capture=in_capture, optional=optional or lo == 0)
            if hi is C.MAXREPEAT:
                quant = "*" if lo == 0 else "+" if lo == 1 else f"{{{lo},}}"
            elif lo == 0 and hi == 1:
                quant = "?"
            elif lo == hi:
                quant = f"{{{lo}}}"
            else:
                quant = f"{{{lo},{hi}}}"
            lazy = "?" if op is C.MIN_REPEAT else ""
            return f"(?:{inner}){quant}{lazy}"
        raise Unsupported(f"regex construct {str(op).lower()}")

    def trailing_take(self, body: list) -> str | None:
        """`(C{lo,hi})` ending the pattern, C one character: RE2 form `(C{lo,})`, and `take` = hi.

        RE2 builds hi copies of C for a counted repeat and extracts groups from it slowly (the
        CloudWatch mapping's first-line pattern `([^\\r\\n]{0,200})` took a fifth of that query).
        Nothing follows the group, so whichever path the pattern takes before it, the greedy
        repeat stops at hi or at the first character outside C: the first hi characters of the
        unbounded group are the same text. None when the group is not of that shape.
        """
        if len(body) != 1 or body[0][0] is not C.MAX_REPEAT:
            return None
        lo, hi, inner = body[0][1]
        inner = list(inner)
        if hi is C.MAXREPEAT or hi > 1000 or lo > 1000 or len(inner) != 1:
            return None
        if inner[0][0] not in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN):
            return None
        char = self.item(inner[0][0], inner[0][1], terminal=False, in_capture=True, optional=lo == 0)
        self.take = hi
        return f"(?:{char})" + ("*" if lo == 0 else "+" if lo == 1 else f"{{{lo},}}")

    def at(self, where, *, terminal: bool, in_capture: bool) -> str:
        if where in (C.AT_BEGINNING, C.AT_BEGINNING_STRING):
            return r"\A"
        if where is C.AT_END_STRING:
            return r"\z"
        if where is C.AT_BOUNDARY:
            return r"\b"
        if where is C.AT_NON_BOUNDARY:
            return r"\B"
        if where is C.AT_END:
            if terminal and not in_capture and self.groups > 0:
                return r"(?:\n?\z)"
            self.needs_no_final_newline = True
            return r"\z"
        raise Unsupported(f"anchor {str(where).lower()}")

    def char_class(self, items) -> str:
        parts = []
        negate = False
        for op, av in items:
            if op is C.NEGATE:
                negate = True
            elif op is C.LITERAL:
                parts.append(_char(av))
            elif op is C.RANGE:
                parts.append(f"{_char(av[0])}-{_char(av[1])}")
            elif op is C.CATEGORY:
                text, negated = _CLASS_OF.get(av, (None, None))
                if text is None:
                    raise Unsupported(f"class {str(av).lower()}")
                if negated:
                    if len(items) != 1:
                        raise Unsupported("a negated class escape inside a set")
                    return f"[^{text}]" if not negate else f"[{text}]"
                parts.append(text)
            else:
                raise Unsupported(f"set item {str(op).lower()}")
        return ("[^" if negate else "[") + "".join(parts) + "]"


def _has_group(items) -> bool:
    for op, av in items:
        if op is C.SUBPATTERN:
            if av[0] is not None or _has_group(av[3]):
                return True
        elif op is C.BRANCH:
            if any(_has_group(b) for b in av[1]):
                return True
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            if _has_group(av[2]):
                return True
    return False


def to_re2(pattern: str) -> Re2Pattern:
    """The RE2 form of a Python pattern, or Unsupported with the reason."""
    try:
        parsed = sre_parse.parse(pattern)
        re.compile(pattern)
    except re.error as err:
        raise Unsupported(f"pattern does not compile in Python: {err}") from None
    flags = parsed.state.flags
    if flags & (re.MULTILINE | re.LOCALE):
        raise Unsupported("MULTILINE or LOCALE flag")
    groups = parsed.state.groups - 1
    writer = _Writer(groups)
    body = writer.seq(list(parsed), terminal=True, in_capture=False, optional=False)
    prefix = ""
    if flags & re.IGNORECASE:
        prefix += "i"
    if flags & re.DOTALL:
        prefix += "s"
    text = (f"(?{prefix})" if prefix else "") + body
    min_width = writer.group1_min_width if groups > 0 else parsed.getwidth()[0]
    return Re2Pattern(pattern=text, group=1 if groups > 0 else 0, group_always_set=writer.group1_always or groups == 0,
                      never_empty=min_width > 0, no_final_newline=writer.needs_no_final_newline, take=writer.take)
