"""docs/security.md names a test for every promise: each test it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "security.md"


def named_tests() -> list[tuple[str, str]]:
    """(file, test) for every reference in the doc's tables; `::name` alone continues the
    file named before it on the same row; a file alone names the whole file."""
    found = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            continue
        current = None
        for ref in re.findall(r"`([^`]+)`", line):
            if ref.startswith("tests/"):
                current, _, test = ref.partition("::")
            elif ref.startswith("::") and current:
                test = ref[2:]
            else:
                continue
            found.append((current, test))
    return found


def test_every_promise_names_a_test_that_exists() -> None:
    named = named_tests()
    assert len(named) >= 40  # the parser found the tables
    missing = [
        f"{file}::{test}" if test else file
        for file, test in named
        if not (ROOT / file).exists() or (test and f"def {test}(" not in (ROOT / file).read_text())
    ]
    assert missing == []
