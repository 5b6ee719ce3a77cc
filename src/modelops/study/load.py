"""Reading a study file (or a calibration file): TOML → spec, or one line saying
`file:line: field: problem`."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.study.errors import Loc, describe, dotted, unknown_field
from modelops.study.locate import key_lines, line_of
from modelops.study.run import RunSpec
from modelops.study.spec import StudySpec

Spec = TypeVar("Spec", bound=RunSpec)

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_END = re.compile(r"\s*\(at end of document\)$")


def load_study(path: Path) -> StudySpec:
    """The study in the file at `path`; a relative bundle folder is taken from its folder."""
    return parse_study(read_spec_file(path, "study"), Path(path))


def parse_study(text: str, source: Path | None = None) -> StudySpec:
    """The study in `text`; `source` names it in errors and places a relative bundle."""
    return parse_spec(StudySpec, text, source, "study")


def read_spec_file(path: Path, kind: str) -> str:
    """The text of a `kind` file ("study", "calibration"), or one line saying why not."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")  # a BOM from some editors is not TOML
    except FileNotFoundError:
        raise ModelOpsError(ErrorClass.NOT_FOUND, f"{kind} file {str(path)!r} not found") from None
    except UnicodeDecodeError as exc:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT, f"{path}: not valid TOML: not UTF-8 text ({exc.reason})"
        ) from None
    except OSError as exc:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT, f"cannot read {kind} file {str(path)!r}: {exc.strerror}"
        ) from None


def parse_spec(spec_type: type[Spec], text: str, source: Path | None, kind: str) -> Spec:
    """The `spec_type` in TOML `text`, or one line `file:line: key: problem`; `source` names
    the file in errors (`<kind>` without one) and is kept on the spec."""
    where = str(source) if source is not None else f"<{kind}>"
    data = _toml(text, where)
    lines = key_lines(text)

    def locate(loc: Loc) -> str:
        return f"{where}:{line_of(lines, loc)}: {dotted(loc)}: "

    kept_out = {name for name, info in spec_type.model_fields.items() if info.exclude}
    for name in kept_out & data.keys():  # the spec's own (`source`), not the file's
        known = [field for field in spec_type.model_fields if field not in kept_out]
        raise _bad(locate((name,)) + unknown_field(name, known))
    try:
        spec = spec_type.model_validate(data, context={"locate": locate})
    except ValidationError as exc:
        raise _bad(first_problem(exc, lambda loc: line_of(lines, loc), locate)) from None
    return spec.model_copy(update={"source": Path(source) if source is not None else None})


def first_problem(
    exc: ValidationError, line: Callable[[Loc], int], prefix: Callable[[Loc], str]
) -> str:
    """The problem nearest the top of the file, as `prefix(loc) + message`: one line,
    even when pydantic found several."""
    problems = [describe(error) for error in exc.errors()]
    loc, message = min(problems, key=lambda problem: line(problem[0]))
    return prefix(loc) + message


def _toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        if match:
            line = int(match.group(1))
            message = f"{message[: match.start()]} (column {match.group(2)})"
        else:
            line = max(1, len(text.splitlines()))
            message = _TOML_END.sub(" (at end of file)", message)
        raise _bad(f"{where}:{line}: not valid TOML: {message}") from None


def _bad(message: str) -> ModelOpsError:
    return ModelOpsError(ErrorClass.BAD_INPUT, " ".join(message.split()))


def field_problem(spec: RunSpec, loc: Loc, problem: ModelOpsError) -> ModelOpsError:
    """A problem found after loading (a bundle that does not exist, a parameter the model
    lacks) said the way a loading error is: `file:line: field: message`, same class."""
    if spec.source is None:
        return ModelOpsError(
            problem.info.error_class,
            f"{dotted(loc)}: {problem.info.message}",
            type=problem.info.type,
            traceback=problem.info.traceback,
        )
    try:
        line = line_of(key_lines(spec.source.read_text(encoding="utf-8-sig")), loc)
    except OSError:
        line = 1
    return ModelOpsError(
        problem.info.error_class,
        f"{spec.source}:{line}: {dotted(loc)}: {problem.info.message}",
        type=problem.info.type,
        traceback=problem.info.traceback,
    )
