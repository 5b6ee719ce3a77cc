"""`name=value` words from the command line, read by one rule for every command.

`mops sim -p beta=0.3` and `mops study sample --fixed days=90` read VALUE the same way: as a
TOML value when it is one (`90`, `0.3`, `true`, `[1, 2]`, `"a b"`, `{a = 1}`), else as the
text written (`north`). TOML, because a value typed here then means what the same text means
in a study file, which is where `--fixed` writes it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from typing import Any

from modelops.contracts.errors import ErrorClass, ModelOpsError

ASSIGNMENT_FORM = "NAME=VALUE, e.g. days=90"


def read_value(raw: str) -> Any:
    """A TOML value when `raw` is one, else the text itself."""
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def read_assignments(
    texts: Iterable[str],
    option: str,
    read: Callable[[str], Any] = read_value,
    form: str = ASSIGNMENT_FORM,
) -> dict[str, tuple[str, Any]]:
    """`{name: (the word as given, its value)}`. A word without `=`, a name given twice, or
    a value `read` refuses (its ValueError says why) is one line naming the word."""
    out: dict[str, tuple[str, Any]] = {}
    for text in texts:
        name, sep, raw = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise _bad(option, text, f"expected {form}")
        if name in out:
            raise _bad(option, text, f"'{name}' is given twice")
        try:
            out[name] = (text, read(raw.strip()))
        except ValueError as exc:
            raise _bad(option, text, str(exc)) from None
    return out


def _bad(option: str, text: str, message: str) -> ModelOpsError:
    return ModelOpsError(ErrorClass.BAD_INPUT, f"{option} {text!r}: {message}")
