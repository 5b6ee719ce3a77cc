"""Line numbers of keys in a TOML text, which tomllib does not report.

Enough TOML to place every key of a study file: table headers, arrays of tables, dotted
and quoted keys; values are only scanned to skip multi-line strings and arrays. Inline
tables sit on one line, so a key inside one is placed on the line of the table's key.
"""

from __future__ import annotations

import re

Loc = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def key_lines(text: str) -> dict[Loc, int]:
    """1-based line of every table and key path in `text`; array-of-tables elements are
    numbered (`("parameters", "sets", 1, "beta")`). The first mention of a path wins."""
    lines: dict[Loc, int] = {}
    aot_counts: dict[Loc, int] = {}
    table: Loc = ()
    scanner = _ValueScanner()
    for number, line in enumerate(text.splitlines(), start=1):
        if scanner.busy:
            scanner.feed(line)
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[["):
            keys, _ = _parse_key(stripped, 2)
            path = (*_resolve(tuple(keys[:-1]), aot_counts), *keys[-1:])
            aot_counts[path] = aot_counts.get(path, -1) + 1
            table = (*path, aot_counts[path])
            _record(lines, table, number)
        elif stripped.startswith("["):
            keys, _ = _parse_key(stripped, 1)
            table = _resolve(tuple(keys), aot_counts)
            _record(lines, table, number)
        else:
            keys, end = _parse_key(stripped, 0)
            _record(lines, (*table, *keys), number)
            equals = stripped.find("=", end)
            scanner.feed(stripped[equals + 1 :] if equals >= 0 else "")
    return lines


def line_of(lines: dict[Loc, int], loc: Loc) -> int:
    """The line of `loc`, or of its nearest enclosing key or table when `loc` itself is not
    in the file (a missing key is reported where its table is); 1 if nothing encloses it."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _record(lines: dict[Loc, int], path: Loc, number: int) -> None:
    for end in range(1, len(path) + 1):
        lines.setdefault(path[:end], number)


def _resolve(keys: Loc, aot_counts: dict[Loc, int]) -> Loc:
    """A header path with the current element index inserted after each array of tables."""
    path: Loc = ()
    for key in keys:
        path = (*path, key)
        if path in aot_counts:
            path = (*path, aot_counts[path])
    return path


def _parse_key(text: str, start: int) -> tuple[list[str], int]:
    """The dotted key starting at `start` (after any brackets) and where it ends."""
    keys: list[str] = []
    i = start
    while i < len(text):
        while i < len(text) and text[i] in " \t":
            i += 1
        if i >= len(text):
            break
        char = text[i]
        if char == '"':
            end = i + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            keys.append(_unescape(text[i + 1 : end]))
            i = end + 1
        elif char == "'":
            end = text.find("'", i + 1)
            end = len(text) if end < 0 else end
            keys.append(text[i + 1 : end])
            i = end + 1
        else:
            match = _BARE.match(text, i)
            if not match:
                break
            keys.append(match.group())
            i = match.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        break
    return keys, i


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return text


class _ValueScanner:
    """Follows a value across lines: open brackets and multi-line strings."""

    def __init__(self) -> None:
        self.depth = 0
        self.open_string: str | None = None  # '"""' or "'''" while inside one

    @property
    def busy(self) -> bool:
        return self.depth > 0 or self.open_string is not None

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            if self.open_string is not None:
                end = self._close(text, i, self.open_string)
                if end < 0:
                    return
                self.open_string = None
                i = end
                continue
            char = text[i]
            if char == "#":
                return
            if text.startswith('"""', i) or text.startswith("'''", i):
                self.open_string = text[i : i + 3]
                i += 3
            elif char in "\"'":
                i = self._close(text, i + 1, char)
                if i < 0:
                    return
            else:
                if char in "[{":
                    self.depth += 1
                elif char in "]}":
                    self.depth -= 1
                i += 1

    @staticmethod
    def _close(text: str, i: int, quote: str) -> int:
        """Index just past the closing `quote` from `i`, or -1 if the line has none."""
        while i < len(text):
            if quote[0] == '"' and text[i] == "\\":
                i += 2
                continue
            if text.startswith(quote, i):
                end = i + len(quote)
                while end < len(text) and text[end] == quote[0] and len(quote) == 3:
                    end += 1  # up to two quotes may close a multi-line string's content
                return end
            i += 1
        return -1
