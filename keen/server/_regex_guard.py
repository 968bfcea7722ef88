"""Regex patterns that cannot run away: checked before they are compiled.

Python's ``re`` backtracks, holds the GIL and cannot be interrupted, so one pattern such as
``^(a+)+$`` on 30 characters can freeze the whole server. The ``regex`` filter therefore accepts
only patterns whose backtracking stays bounded (at worst quadratic in the string, and strings are
shorter than ``MAX_STRING``):

* at most ``MAX_REGEX_LENGTH`` characters; repeat counts at most ``MAX_REGEX_REPEAT``;
* no backreferences (``\\1``, ``(?P=name)``) and no conditional groups;
* a variable quantifier (``*``, ``+``, ``?``, ``{m,n}``) may not be applied to something that
  itself holds a variable quantifier or an alternation (``(a+)+``, ``(a|ab)*``, ``(a?){5}``);
* two variable parts may not compete for the same characters: after a variable part, the next
  variable part that can match one of its characters must be preceded by a required character
  it cannot match (``\\d+-\\d+`` and ``.*@x`` are fine; ``.*.*x``, ``a*a*`` and ``\\w+\\d+`` are
  not). An alternation counts as a variable part.

Refusals are ``InvalidFilterError`` naming the rule. The check is conservative: where it cannot
prove two character classes disjoint it treats them as overlapping.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from keen.server.limits import MAX_REGEX_LENGTH, MAX_REGEX_REPEAT

try:  # Python 3.11+
    _p: Any = importlib.import_module("re._parser")
    _c: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - Python 3.9 and 3.10
    _p = importlib.import_module("sre_parse")
    _c = importlib.import_module("sre_constants")

__all__ = ["regex_problem"]

_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
_ZERO_WIDTH = {"AT", "ASSERT", "ASSERT_NOT"}
_CATEGORIES = {
    "CATEGORY_DIGIT": re.compile(r"\d"), "CATEGORY_NOT_DIGIT": re.compile(r"\D"),
    "CATEGORY_SPACE": re.compile(r"\s"), "CATEGORY_NOT_SPACE": re.compile(r"\S"),
    "CATEGORY_WORD": re.compile(r"\w"), "CATEGORY_NOT_WORD": re.compile(r"\W"),
}
# Pairs of categories with no character in common (either order).
_DISJOINT_CATEGORIES = {
    frozenset(pair) for pair in (
        ("CATEGORY_DIGIT", "CATEGORY_NOT_DIGIT"), ("CATEGORY_SPACE", "CATEGORY_NOT_SPACE"),
        ("CATEGORY_WORD", "CATEGORY_NOT_WORD"), ("CATEGORY_DIGIT", "CATEGORY_SPACE"),
        ("CATEGORY_WORD", "CATEGORY_SPACE"), ("CATEGORY_DIGIT", "CATEGORY_NOT_WORD"),
    )
}
_ENUMERABLE = 5_000  # ranges up to this size are checked character by character


class _Refused(Exception):
    pass


class _Set:
    """A set of characters: the union of ``ranges`` and ``categories``, or its complement."""

    def __init__(self, negated: bool = False) -> None:
        self.negated = negated
        self.ranges: list[tuple[int, int]] = []
        self.categories: set[str] = set()

    def contains(self, code: int) -> bool:
        char = chr(code)
        hit = any(lo <= code <= hi for lo, hi in self.ranges) or any(
            _CATEGORIES[name].match(char) for name in self.categories)
        return hit != self.negated


def _name(op: Any) -> str:
    return str(getattr(op, "name", op))  # the opcode constants carry their name


def _atom_set(op: str, av: Any, ignore_case: bool) -> _Set | None:
    """The characters one single-character item matches (None when it is not one)."""
    if op == "ANY":
        return _Set(negated=True)
    if op in ("LITERAL", "NOT_LITERAL"):
        result = _Set(negated=op == "NOT_LITERAL")
        result.ranges.append((av, av))
    elif op == "IN":
        result = _Set()
        for sub_op, sub_av in av:
            name = _name(sub_op)
            if name == "NEGATE":
                result.negated = True
            elif name == "LITERAL":
                result.ranges.append((sub_av, sub_av))
            elif name == "RANGE":
                result.ranges.append(tuple(sub_av))
            elif name == "CATEGORY":
                result.categories.add(_name(sub_av))
            else:  # anything unexpected: assume it may match anything
                return _Set(negated=True)
    else:
        return None
    if ignore_case:
        _add_cases(result)
    return result


def _add_cases(chars: _Set) -> None:
    extra: list[tuple[int, int]] = []
    for lo, hi in chars.ranges:
        if hi - lo > _ENUMERABLE:  # case variants could lie anywhere: assume anything
            if not chars.negated:
                chars.negated, chars.ranges, chars.categories = True, [], set()
            return
        for code in range(lo, hi + 1):
            for variant in {chr(code).lower(), chr(code).upper(), chr(code).swapcase()}:
                if len(variant) == 1:
                    extra.append((ord(variant), ord(variant)))
    chars.ranges.extend(extra)


def _disjoint(a: _Set, b: _Set) -> bool:
    """True only when no character is in both (False when that cannot be shown)."""
    if a.negated and b.negated:
        return False
    if a.negated:
        a, b = b, a
    if b.negated:  # a inside b's excluded union?
        return _subset(a, b)
    for lo, hi in a.ranges:
        for lo2, hi2 in b.ranges:
            if lo <= hi2 and lo2 <= hi:
                return False
        for name in b.categories:
            if hi - lo > _ENUMERABLE or any(
                    _CATEGORIES[name].match(chr(code)) for code in range(lo, hi + 1)):
                return False
    for name in a.categories:
        for lo, hi in b.ranges:
            if hi - lo > _ENUMERABLE or any(
                    _CATEGORIES[name].match(chr(code)) for code in range(lo, hi + 1)):
                return False
        for other in b.categories:
            if frozenset((name, other)) not in _DISJOINT_CATEGORIES:
                return False
    return True


def _subset(a: _Set, excluded: _Set) -> bool:
    """Whether every character of (non-negated) ``a`` is in ``excluded``'s union."""
    inner = _Set()
    inner.ranges, inner.categories = excluded.ranges, excluded.categories
    for lo, hi in a.ranges:
        if hi - lo > _ENUMERABLE or not all(inner.contains(code) for code in range(lo, hi + 1)):
            return False
    for name in a.categories:
        if name not in excluded.categories and not (
                name == "CATEGORY_DIGIT" and "CATEGORY_WORD" in excluded.categories):
            return False
    return True


class _Part:
    """One element of a flattened sequence: the characters it may match and whether it is
    variable (may match a varying number of characters)."""

    def __init__(self, chars: list[_Set], variable: bool) -> None:
        self.chars = chars
        self.variable = variable


def _overlap(a: list[_Set], b: list[_Set]) -> bool:
    return any(not _disjoint(x, y) for x in a for y in b)


class _Checker:
    def __init__(self, ignore_case: bool) -> None:
        self.ignore_case = ignore_case

    def sequence(self, items: Any) -> list[_Part]:
        """Check a sequence; its flattened parts (zero-width items left out)."""
        parts: list[_Part] = []
        for op_code, av in items:
            parts.extend(self.item(_name(op_code), av))
        self.competition(parts)
        return parts

    def item(self, op: str, av: Any) -> list[_Part]:
        if op in ("GROUPREF", "GROUPREF_EXISTS", "GROUPREF_IGNORE", "GROUPREF_LOC_IGNORE",
                  "GROUPREF_UNI_IGNORE"):
            raise _Refused("backreferences and conditional groups are not supported")
        chars = _atom_set(op, av, self.ignore_case)
        if chars is not None:
            return [_Part([chars], variable=False)]
        if op == "SUBPATTERN":  # (group, added flags, removed flags, body) on 3.7+
            flags = av[1] if len(av) == 4 else 0
            if flags & re.IGNORECASE and not self.ignore_case:
                return _Checker(True).sequence(av[-1])
            return self.sequence(av[-1])
        if op == "ATOMIC_GROUP":
            return self.sequence(av)
        if op in ("ASSERT", "ASSERT_NOT"):
            self.sequence(av[1])
            return []
        if op == "AT":
            return []
        if op == "BRANCH":
            branches = [self.sequence(branch) for branch in av[1]]
            union = [s for parts in branches for part in parts for s in part.chars]
            return [_Part(union or [_Set(negated=True)], variable=True)]
        if op in _REPEATS:
            low, high, body = av
            limit = high if high != _c.MAXREPEAT else low
            if low > MAX_REGEX_REPEAT or limit > MAX_REGEX_REPEAT:
                raise _Refused(f"repeat counts are limited to {MAX_REGEX_REPEAT}")
            inner = self.sequence(body)
            union = [s for part in inner for s in part.chars] or [_Set(negated=True)]
            inner_variable = any(part.variable for part in inner)
            if low == high:
                if inner_variable and low > 1:
                    raise _Refused("a variable part inside a repeat is not supported "
                                   "(nested quantifiers can run for ever)")
                return [_Part(union, variable=inner_variable)]
            if inner_variable:
                raise _Refused("a quantifier or alternation inside a quantified group is not "
                               "supported (nested quantifiers can run for ever)")
            return [_Part(union, variable=True)]
        # Anything else (e.g. a new opcode): refuse rather than guess.
        raise _Refused(f"the construct {op} is not supported")

    @staticmethod
    def competition(parts: list[_Part]) -> None:
        for index, part in enumerate(parts):
            if not part.variable:
                continue
            for later in parts[index + 1:]:
                if later.variable:
                    if _overlap(part.chars, later.chars):
                        raise _Refused(
                            "two quantified parts can match the same characters with nothing "
                            "required between them (like .*.* or \\w+\\d+), which can take "
                            "very long to fail")
                elif not _overlap(part.chars, later.chars):
                    break


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused (see the module docstring), or None when it is accepted."""
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"is longer than {MAX_REGEX_LENGTH} characters"
    try:
        parsed = _p.parse(pattern)
        re.compile(pattern)
    except re.error as exc:
        return f"has an invalid regular expression ({exc})"
    except (OverflowError, RecursionError, ValueError) as exc:
        return f"has an unsupported regular expression ({exc})"
    ignore_case = bool(parsed.state.flags & re.IGNORECASE)
    try:
        _Checker(ignore_case).sequence(parsed.data if hasattr(parsed, "data") else parsed)
    except _Refused as exc:
        return f"has a regular expression that could run away: {exc}"
    return None
