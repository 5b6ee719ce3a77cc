"""Memory sizes as people write them: `2GB`, `512MB`, `1.5g`, or a number of megabytes."""

from __future__ import annotations

import re

# Binary units, as `mops sim --memory-limit` reads them: 1 GB is 1024 MB.
_UNITS_MB = {"k": 2**-10, "m": 1.0, "g": 2.0**10, "t": 2.0**20}
_SIZE = re.compile(r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgt])?(?:i?b)?")


def parse_size_mb(text: str) -> float:
    """Megabytes in `text`; ValueError saying what a size looks like when it is not one."""
    match = _SIZE.fullmatch(text.strip().lower())
    if not match or (match.group(2) is None and text.strip().lower().endswith("b")):
        raise ValueError(f"{text!r} is not a size like 512MB, 2GB or 1.5g")
    return float(match.group(1)) * _UNITS_MB[match.group(2) or "m"]
