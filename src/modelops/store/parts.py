"""Numbered Parquet parts in one folder: each flush adds one file, written atomically.

A part is complete or absent: it is written as `.tmp-<uuid>.parquet` and renamed to
`part-NNNNN.parquet`. Numbering continues after the parts already there, so a resumed job
appends rather than overwrites. Readers list only `part-*.parquet`.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq

from modelops.store.location import Location

_PART = re.compile(r"part-(\d{5,})\.parquet")


def part_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


def _number(path: str) -> int:
    match = _PART.fullmatch(path.rsplit("/", 1)[-1])
    assert match is not None, path
    return int(match.group(1))


def list_parts(location: Location, folder: str) -> list[str]:
    """Full paths of the complete parts in `folder`, in the order they were written."""
    numbered = [
        (int(match.group(1)), name)
        for name in location.list_names(folder)
        if (match := _PART.fullmatch(name))
    ]
    return [f"{folder}/{name}" for _, name in sorted(numbered)]


class PartSequence:
    """The next part numbers of one folder; one writer per folder at a time."""

    def __init__(self, location: Location, folder: str) -> None:
        self._location = location
        self._folder = folder
        self._next: int | None = None  # looked up on first write: most outputs see one

    def write(self, table: pa.Table) -> str:
        """Write `table` as the next part (zstd, one row group) and return its path."""
        if self._next is None:
            existing = list_parts(self._location, self._folder)
            self._next = _number(existing[-1]) + 1 if existing else 0
        path = f"{self._folder}/{part_name(self._next)}"
        self._location.write_atomic(
            path,
            lambda file: pq.write_table(
                table, file, compression="zstd", row_group_size=max(1, table.num_rows)
            ),
        )
        self._next += 1
        return path
