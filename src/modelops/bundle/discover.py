"""Find a project's wire function and environment description at build time.

Wire order (DESIGN.md): `[tool.modelops] wire`, a `modelops.wire` entry point declared in
pyproject.toml, then a top-level `wire.py` that defines `wire`. Finding it here, once,
means a folder without one fails at build with a clear message, not later on a worker.
The one exception: a bundle that declares no wire but has dependencies may get its wire
from a package of its environment (the earlier system's Calabaria provided one as a
`modelops.wire` entry point); that is looked up by the child once the environment exists.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

from modelops.contracts import ErrorClass, Isolation, ModelOpsError, RunLimits

_WIRE_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
PYTHON_VERSION_FILE = ".python-version"


def read_pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ModelOpsError(ErrorClass.BAD_BUNDLE, f"{path} is not valid TOML: {exc}") from exc


WIRE_FROM_ENVIRONMENT = ""  # the config's wire when a dependency's entry point provides it


def find_wire(
    root: Path, pyproject: dict[str, Any], included: set[str], has_dependencies: bool
) -> str:
    """`module:function` of the wire, or WIRE_FROM_ENVIRONMENT when the bundle declares none
    but has dependencies that may provide one; `included` are the bundle's files, so a
    wire.py that .modelopsignore leaves out does not count."""
    declared = pyproject.get("tool", {}).get("modelops", {}).get("wire")
    if declared is not None:
        return _checked_spec(declared, "[tool.modelops] wire in pyproject.toml")
    entry_points = pyproject.get("project", {}).get("entry-points", {})
    group = entry_points.get("modelops.wire", {})
    if len(group) > 1:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"pyproject.toml declares {len(group)} 'modelops.wire' entry points "
            f"({', '.join(sorted(group))}); keep one, or set [tool.modelops] wire",
        )
    if group:
        return _checked_spec(next(iter(group.values())), "the modelops.wire entry point")
    if "wire" in entry_points.get("modelops", {}):
        return _checked_spec(entry_points["modelops"]["wire"], "the modelops:wire entry point")
    wire_py = root / "wire.py"
    if "wire.py" in included:
        if not _defines(wire_py, "wire"):
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE,
                f"{wire_py} does not define a top-level 'wire' function; add "
                "def wire(entrypoint, params, seed) -> dict[str, bytes]",
            )
        return "wire:wire"
    if has_dependencies:
        return WIRE_FROM_ENVIRONMENT
    raise ModelOpsError(
        ErrorClass.BAD_BUNDLE,
        f"no wire function in {root}: add wire.py defining wire(entrypoint, params, seed), "
        'set [tool.modelops] wire = "module:function" in pyproject.toml, or depend on a '
        "package that provides a 'modelops.wire' entry point",
    )


def _checked_spec(spec: object, where: str) -> str:
    if not isinstance(spec, str) or not _WIRE_SPEC.fullmatch(spec.strip()):
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"{where} is {spec!r}; expected 'module:function'"
        )
    return spec.strip()


def _defines(path: Path, name: str) -> bool:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"{path} has a syntax error on line {exc.lineno}: {exc.msg}"
        ) from exc
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return True
        if isinstance(node, ast.ImportFrom) and any(
            (alias.asname or alias.name) == name for alias in node.names
        ):
            return True
    return False


def environment_kind(root: Path, pyproject: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """Which files decide the environment: a uv lock, a requirements file, or pyproject deps,
    plus a `.python-version` that pins the interpreter."""
    pinned = (PYTHON_VERSION_FILE,) if (root / PYTHON_VERSION_FILE).is_file() else ()
    if (root / "uv.lock").is_file():
        return "uv.lock", ("pyproject.toml", "uv.lock", *pinned)
    if (root / "requirements.txt").is_file():
        return "requirements.txt", ("requirements.txt", *pinned)
    if pyproject.get("project", {}).get("dependencies"):
        return "pyproject.toml", ("pyproject.toml", *pinned)
    return "none", pinned


def runtime_defaults(pyproject: dict[str, Any]) -> tuple[Isolation, int | None]:
    """`[tool.modelops] isolation` and `max_tasks_per_process`, checked now, not on a worker."""
    table = pyproject.get("tool", {}).get("modelops", {})
    try:
        limits = RunLimits(
            isolation=table.get("isolation", "warm"),
            max_tasks_per_process=table.get("max_tasks_per_process"),
        )
    except ModelOpsError as exc:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"[tool.modelops] in pyproject.toml: {exc.info.message}"
        ) from exc
    assert limits.isolation is not None
    return limits.isolation, limits.max_tasks_per_process


def import_paths(pyproject: dict[str, Any], included: set[str]) -> tuple[str, ...]:
    """Folders of the bundle, besides its root, that hold the project's own importable code,
    as an editable install of the project would put them on `sys.path` (`uv run` does
    that): a `src/` layout, or the source folders its build backend is told about. The
    environment stays keyed by the lock alone; the child adds these paths at start."""
    tool = pyproject.get("tool", {})
    declared: list[str] = ["src"]
    hatch_wheel = tool.get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
    declared += [str(Path(p).parent) for p in hatch_wheel.get("packages", [])]
    sources = hatch_wheel.get("sources", [])
    if isinstance(sources, dict):  # {"src": ""} or {"src/pkg": "pkg"}: strip to the root
        declared += [k.removesuffix(str(v)) for k, v in sources.items() if k.endswith(str(v))]
    else:
        declared += list(sources)
    setuptools = tool.get("setuptools", {})
    package_dir = setuptools.get("package-dir", {})
    if isinstance(package_dir, dict) and "" in package_dir:
        declared.append(package_dir[""])
    find = setuptools.get("packages", {})
    if isinstance(find, dict):
        declared += find.get("find", {}).get("where", [])
    declared += [
        p["from"]
        for p in tool.get("poetry", {}).get("packages", [])
        if isinstance(p, dict) and "from" in p
    ]
    declared.append(tool.get("uv", {}).get("build-backend", {}).get("module-root", ""))
    declared.append(tool.get("pdm", {}).get("build", {}).get("package-dir", ""))
    found = []
    for folder in declared:
        clean = Path(str(folder)).as_posix().strip("/")
        if clean in ("", ".") or clean.startswith("..") or clean in found:
            continue
        if any(path.startswith(clean + "/") and path.endswith(".py") for path in included):
            found.append(clean)
    return tuple(found)
