"""Building a bundle from a folder: reproducible digest, ignore rules, layers, wire discovery."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from modelops.bundle import BuiltBundle, build_bundle
from modelops.bundle.build import LARGE_FILE_BYTES, Blob
from modelops.bundle.config import (
    ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE,
    FILE_LAYER_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    TITLE_ANNOTATION,
    TREE_LAYER_MEDIA_TYPE,
    BundleConfig,
)
from modelops.contracts import ErrorClass, ModelOpsError
from modelops.contracts.ids import canonical_json, sha256_hex

WIRE = "def wire(entrypoint, params, seed):\n    return {}\n"
BASE: dict[str, str | bytes] = {
    "wire.py": WIRE,
    "model/__init__.py": "",
    "model/sim.py": "def run(beta):\n    return beta * 2\n",
    "data/params.json": '{"beta": 0.3}\n',
    "README.md": "# A model\n",
}
BIG = bytes(range(256)) * (LARGE_FILE_BYTES // 256)  # exactly 1 MiB


def write_tree(
    root: Path,
    files: Mapping[str, str | bytes],
    *,
    order: Iterable[str] | None = None,
    mode: int = 0o644,
    executables: Iterable[str] = (),
) -> Path:
    """Write `files` under `root` in the given order, each with `mode` (or 0o755)."""
    executable = set(executables)
    root.mkdir(parents=True, exist_ok=True)
    for name in order if order is not None else files:
        content = files[name]
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        path.chmod(0o755 if name in executable else mode)
    return root


def set_mtimes(root: Path, when: float) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.utime(Path(dirpath) / name, (when, when))
    os.utime(root, (when, when))


def digest_of(root: Path) -> str:
    return build_bundle(root, repository="model").ref.digest


def paths(bundle: BuiltBundle) -> list[str]:
    return [f.path for f in bundle.config.files]


def blob_bytes(blob: Blob) -> bytes:
    return blob.source if isinstance(blob.source, bytes) else blob.source.read_bytes()


def tree_layer(bundle: BuiltBundle) -> Blob:
    (layer,) = [b for b in bundle.layers if b.media_type == TREE_LAYER_MEDIA_TYPE]
    return layer


def tree_members(bundle: BuiltBundle) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(blob_bytes(tree_layer(bundle)))) as tar:
        return tar.getmembers()


def file_layers(bundle: BuiltBundle) -> dict[str, Blob]:
    return {b.title: b for b in bundle.layers if b.media_type == FILE_LAYER_MEDIA_TYPE if b.title}


def build_error(root: Path) -> str:
    """The one-line message of the BAD_BUNDLE error that building `root` raises."""
    with pytest.raises(ModelOpsError) as excinfo:
        build_bundle(root)
    assert excinfo.value.info.error_class is ErrorClass.BAD_BUNDLE
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --- reproducible digest --------------------------------------------------------------------


def test_same_files_give_the_same_digest_whatever_the_order_time_and_place(
    tmp_path: Path,
) -> None:
    files = {**BASE, "run.sh": "#!/bin/sh\necho run\n"}
    first = write_tree(tmp_path / "one" / "project", files, executables=["run.sh"])
    second = write_tree(
        tmp_path / "two" / "elsewhere",
        files,
        order=reversed(list(files)),
        executables=["run.sh"],
    )
    set_mtimes(first, 1_000_000_000)
    set_mtimes(second, 1_700_000_000)
    one, two = build_bundle(first, "model"), build_bundle(second, "model")
    assert one.ref.digest == two.ref.digest
    assert one.manifest == two.manifest
    assert one.config == two.config
    assert blob_bytes(tree_layer(one)) == blob_bytes(tree_layer(two))
    assert build_bundle(first, "model").ref.digest == one.ref.digest  # again, same folder


def test_manifest_is_canonical_json_and_names_its_digest(tmp_path: Path) -> None:
    bundle = build_bundle(write_tree(tmp_path / "p", BASE), "model")
    assert bundle.ref.digest == "sha256:" + sha256_hex(bundle.manifest)
    manifest = json.loads(bundle.manifest)
    assert canonical_json(manifest) == bundle.manifest
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == MANIFEST_MEDIA_TYPE
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    assert manifest["config"]["digest"] == bundle.config_blob.digest
    assert [layer["digest"] for layer in manifest["layers"]] == [b.digest for b in bundle.layers]
    for blob in bundle.blobs:
        data = blob_bytes(blob)
        assert blob.digest == "sha256:" + sha256_hex(data)
        assert blob.size == len(data)
    assert BundleConfig.from_bytes(blob_bytes(bundle.config_blob)) == bundle.config


def test_tree_layer_has_no_timestamps_or_owners(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "p", BASE)
    set_mtimes(root, 1_600_000_000)
    members = tree_members(build_bundle(root, "model"))
    assert [m.name for m in members] == sorted(BASE)
    for member in members:
        assert member.isreg()
        assert member.mtime == 0
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mode == 0o644


def test_one_changed_byte_changes_the_digest(tmp_path: Path) -> None:
    before = digest_of(write_tree(tmp_path / "a", BASE))
    changed = {**BASE, "data/params.json": '{"beta": 0.4}\n'}
    assert digest_of(write_tree(tmp_path / "b", changed)) != before


def test_added_or_renamed_file_changes_the_digest(tmp_path: Path) -> None:
    before = digest_of(write_tree(tmp_path / "a", BASE))
    added = {**BASE, "notes.txt": ""}
    renamed = {("docs/README.md" if k == "README.md" else k): v for k, v in BASE.items()}
    assert digest_of(write_tree(tmp_path / "b", added)) != before
    assert digest_of(write_tree(tmp_path / "c", renamed)) != before


def test_exec_bit_changes_the_digest_other_mode_bits_do_not(tmp_path: Path) -> None:
    private = write_tree(tmp_path / "a", BASE, mode=0o600)
    shared = write_tree(tmp_path / "b", BASE, mode=0o644)
    group = write_tree(tmp_path / "c", BASE, mode=0o664)
    assert digest_of(private) == digest_of(shared) == digest_of(group)

    executable = write_tree(tmp_path / "d", BASE, mode=0o644)
    (executable / "model/sim.py").chmod(0o744)
    bundle = build_bundle(executable, "model")
    assert bundle.ref.digest != digest_of(shared)
    modes = {f.path: f.mode for f in bundle.config.files}
    assert modes["model/sim.py"] == 0o755
    assert modes["wire.py"] == 0o644
    assert {m.name: m.mode for m in tree_members(bundle)}["model/sim.py"] == 0o755


# --- ignore rules ---------------------------------------------------------------------------


def test_modelopsignore_excludes_files_and_changes_nothing_else(tmp_path: Path) -> None:
    ignore = {".modelopsignore": "# outputs are rebuilt\ndata/*.csv\n!data/keep.csv\nscratch/\n"}
    full = {
        **BASE,
        **ignore,
        "data/a.csv": "1,2\n",
        "data/b.csv": "3,4\n",
        "data/keep.csv": "5,6\n",
        "data/deeper/c.csv": "7,8\n",
        "scratch/tmp.py": "x = 1\n",
    }
    without_ignored = {
        **BASE,
        **ignore,
        "data/keep.csv": "5,6\n",
        "data/deeper/c.csv": "7,8\n",
    }
    bundle = build_bundle(write_tree(tmp_path / "full", full), "model")
    trimmed = build_bundle(write_tree(tmp_path / "trimmed", without_ignored), "model")
    assert bundle.ref.digest == trimmed.ref.digest
    assert "data/a.csv" not in paths(bundle)
    assert "data/b.csv" not in paths(bundle)
    assert "scratch/tmp.py" not in paths(bundle)
    assert "data/keep.csv" in paths(bundle)
    assert "data/deeper/c.csv" in paths(bundle)  # data/*.csv does not match deeper folders
    assert paths(bundle) == sorted([*BASE, *ignore, "data/keep.csv", "data/deeper/c.csv"])

    (tmp_path / "full" / "data" / "a.csv").write_text("changed\n")
    assert digest_of(tmp_path / "full") == bundle.ref.digest


def test_always_ignored_folders_and_files_are_left_out(tmp_path: Path) -> None:
    clutter = {
        ".git/HEAD": "ref: refs/heads/main\n",
        ".git/objects/ab/cdef": b"\x00blob",
        ".venv/bin/python": "#!/bin/sh\n",
        ".venv/lib/site.py": "",
        "__pycache__/wire.cpython-311.pyc": b"\x00pyc",
        "model/__pycache__/sim.cpython-311.pyc": b"\x00pyc",
        "model/stale.pyc": b"\x00pyc",
        ".modelops/jobs.sqlite": b"SQLite",
        ".pytest_cache/v/cache": "{}",
        "model.egg-info/PKG-INFO": "Name: model\n",
        ".DS_Store": b"\x00",
    }
    clean = digest_of(write_tree(tmp_path / "clean", BASE))
    cluttered = build_bundle(write_tree(tmp_path / "cluttered", {**BASE, **clutter}), "model")
    assert cluttered.ref.digest == clean
    assert paths(cluttered) == sorted(BASE)


# --- layers ---------------------------------------------------------------------------------


def test_large_files_and_the_environment_get_their_own_layers(tmp_path: Path) -> None:
    files = {
        **BASE,
        "data/big.bin": BIG,
        "data/almost.bin": BIG[:-1],
        "requirements.txt": "numpy>=1.26\n",
    }
    bundle = build_bundle(write_tree(tmp_path / "p", files), "model")
    own = file_layers(bundle)
    assert set(own) == {"data/big.bin", "requirements.txt"}
    for title, layer in own.items():
        assert layer.media_type == FILE_LAYER_MEDIA_TYPE
        assert layer.descriptor()["annotations"] == {TITLE_ANNOTATION: title}
        content = files[title]
        data = content.encode() if isinstance(content, str) else content
        assert layer.digest == "sha256:" + sha256_hex(data)
        assert layer.size == len(data)
    assert bundle.layers[0].media_type == TREE_LAYER_MEDIA_TYPE
    in_tree = [m.name for m in tree_members(bundle)]
    assert "data/almost.bin" in in_tree
    assert "data/big.bin" not in in_tree
    assert "requirements.txt" not in in_tree
    manifest_titles = [
        layer.get("annotations", {}).get(TITLE_ANNOTATION)
        for layer in json.loads(bundle.manifest)["layers"]
    ]
    assert manifest_titles == [None, "data/big.bin", "requirements.txt"]
    assert bundle.config.environment.kind == "requirements.txt"
    assert bundle.config.environment.files == ("requirements.txt",)
    assert paths(bundle) == sorted(files)


def test_a_code_change_keeps_data_and_environment_layers(tmp_path: Path) -> None:
    files = {**BASE, "data/big.bin": BIG, "requirements.txt": "numpy>=1.26\n"}
    before = build_bundle(write_tree(tmp_path / "p", files), "model")
    (tmp_path / "p" / "model" / "sim.py").write_text("def run(beta):\n    return beta * 3\n")
    after = build_bundle(tmp_path / "p", "model")
    assert after.ref.digest != before.ref.digest
    assert tree_layer(after).digest != tree_layer(before).digest
    assert file_layers(after)["data/big.bin"].digest == file_layers(before)["data/big.bin"].digest
    assert file_layers(after)["requirements.txt"] == file_layers(before)["requirements.txt"]
    assert after.config.environment.lock_digest == before.config.environment.lock_digest

    (tmp_path / "p" / "requirements.txt").write_text("numpy>=2\n")
    changed_env = build_bundle(tmp_path / "p", "model")
    assert changed_env.config.environment.lock_digest != before.config.environment.lock_digest


def test_uv_lock_environment_is_pyproject_and_lock(tmp_path: Path) -> None:
    files = {
        **BASE,
        "pyproject.toml": '[project]\nname = "sir"\nversion = "1"\ndependencies = ["numpy"]\n',
        "uv.lock": "version = 1\n",
    }
    bundle = build_bundle(write_tree(tmp_path / "p", files))
    env = bundle.config.environment
    assert env.kind == "uv.lock"
    assert env.files == ("pyproject.toml", "uv.lock")
    expected = {p: "sha256:" + sha256_hex(str(files[p]).encode()) for p in env.files}
    assert env.lock_digest == "sha256:" + sha256_hex(canonical_json(expected))
    assert set(file_layers(bundle)) == {"pyproject.toml", "uv.lock"}


def test_pyproject_dependencies_and_no_environment(tmp_path: Path) -> None:
    pyproject = '[project]\nname = "sir"\ndependencies = ["numpy"]\n'
    with_deps = build_bundle(write_tree(tmp_path / "a", {**BASE, "pyproject.toml": pyproject}))
    assert with_deps.config.environment.kind == "pyproject.toml"
    assert with_deps.config.environment.files == ("pyproject.toml",)
    bare = build_bundle(write_tree(tmp_path / "b", BASE), "model")
    assert bare.config.environment.kind == "none"
    assert bare.config.environment.files == ()
    assert file_layers(bare) == {}
    assert len(bare.layers) == 1


def test_ignored_requirements_file_is_refused(tmp_path: Path) -> None:
    files = {**BASE, "requirements.txt": "numpy\n", ".modelopsignore": "requirements.txt\n"}
    message = build_error(write_tree(tmp_path / "p", files))
    assert "requirements.txt" in message


# --- wire discovery -------------------------------------------------------------------------


def without_wire_py() -> dict[str, str | bytes]:
    return {k: v for k, v in BASE.items() if k != "wire.py"}


def test_wire_from_tool_modelops(tmp_path: Path) -> None:
    files = {
        **BASE,  # a wire.py too: [tool.modelops] comes first
        "pyproject.toml": '[project]\nname = "sir"\n\n[tool.modelops]\nwire = "pkg.mod:fn"\n',
    }
    assert build_bundle(write_tree(tmp_path / "p", files)).config.wire == "pkg.mod:fn"


def test_wire_from_entry_point(tmp_path: Path) -> None:
    pyproject = (
        '[project]\nname = "sir"\n\n'
        '[project.entry-points."modelops.wire"]\nsir = "sir_model.entry:wire"\n'
    )
    files = {**without_wire_py(), "pyproject.toml": pyproject}
    assert build_bundle(write_tree(tmp_path / "p", files)).config.wire == "sir_model.entry:wire"


def test_wire_from_legacy_modelops_entry_point_group(tmp_path: Path) -> None:
    pyproject = '[project]\nname = "sir"\n\n[project.entry-points.modelops]\nwire = "old:wire"\n'
    files = {**without_wire_py(), "pyproject.toml": pyproject}
    assert build_bundle(write_tree(tmp_path / "p", files)).config.wire == "old:wire"


@pytest.mark.parametrize(
    "source",
    [
        WIRE,
        "async def wire(entrypoint, params, seed):\n    return {}\n",
        "from model.sim import run as wire\n",
        "def _impl(e, p, s):\n    return {}\n\nwire = _impl\n",
    ],
    ids=["def", "async-def", "import-as", "assignment"],
)
def test_wire_from_top_level_wire_py(tmp_path: Path, source: str) -> None:
    files = {**BASE, "wire.py": source}
    assert build_bundle(write_tree(tmp_path / "p", files)).config.wire == "wire:wire"


def test_no_wire_at_all_is_refused(tmp_path: Path) -> None:
    message = build_error(write_tree(tmp_path / "p", without_wire_py()))
    assert "wire.py" in message
    assert "[tool.modelops] wire" in message


def test_wire_py_without_a_wire_function_is_refused(tmp_path: Path) -> None:
    files = {**BASE, "wire.py": "def run(entrypoint, params, seed):\n    return {}\n"}
    message = build_error(write_tree(tmp_path / "p", files))
    assert "wire.py" in message
    assert "'wire'" in message


def test_wire_py_with_a_syntax_error_is_refused(tmp_path: Path) -> None:
    files = {**BASE, "wire.py": "def wire(:\n"}
    message = build_error(write_tree(tmp_path / "p", files))
    assert "syntax error" in message
    assert "line 1" in message


@pytest.mark.parametrize(
    "spec",
    ['"not a spec"', '"module"', '"mod:fn:extra"', '"1mod:fn"', '"mod:"', "42", '["a:b"]'],
)
def test_invalid_wire_spec_is_refused(tmp_path: Path, spec: str) -> None:
    files = {**BASE, "pyproject.toml": f"[tool.modelops]\nwire = {spec}\n"}
    message = build_error(write_tree(tmp_path / "p", files))
    assert "[tool.modelops] wire" in message
    assert "'module:function'" in message


def test_invalid_entry_point_spec_is_refused(tmp_path: Path) -> None:
    pyproject = '[project]\nname = "sir"\n\n[project.entry-points."modelops.wire"]\nx = "bad"\n'
    message = build_error(write_tree(tmp_path / "p", {**BASE, "pyproject.toml": pyproject}))
    assert "entry point" in message
    assert "'bad'" in message


def test_two_wire_entry_points_are_refused(tmp_path: Path) -> None:
    pyproject = (
        '[project]\nname = "sir"\n\n'
        '[project.entry-points."modelops.wire"]\nfirst = "a:wire"\nsecond = "b:wire"\n'
    )
    message = build_error(write_tree(tmp_path / "p", {**BASE, "pyproject.toml": pyproject}))
    assert "2 'modelops.wire' entry points" in message
    assert "first" in message
    assert "second" in message


def test_invalid_pyproject_is_refused(tmp_path: Path) -> None:
    message = build_error(write_tree(tmp_path / "p", {**BASE, "pyproject.toml": "[project\n"}))
    assert "pyproject.toml" in message
    assert "TOML" in message


def test_uv_lock_without_pyproject_is_refused(tmp_path: Path) -> None:
    message = build_error(write_tree(tmp_path / "p", {**BASE, "uv.lock": "version = 1\n"}))
    assert "uv.lock" in message
    assert "pyproject.toml" in message


def test_ignored_wire_py_is_not_a_wire(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "p", {**BASE, ".modelopsignore": "wire.py\n"})
    try:
        bundle = build_bundle(root)
    except ModelOpsError as exc:
        assert exc.info.error_class is ErrorClass.BAD_BUNDLE
    else:
        assert "wire.py" in paths(bundle)


# --- links and other non-files --------------------------------------------------------------


def test_symlink_pointing_outside_the_project_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret\n")
    root = write_tree(tmp_path / "p", BASE)
    (root / "data" / "link.txt").symlink_to(outside)
    message = build_error(root)
    assert "link.txt" in message
    assert "outside the project" in message


def test_symlinked_folder_is_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "p", BASE)
    (root / "alias").symlink_to(root / "model", target_is_directory=True)
    message = build_error(root)
    assert "alias" in message
    assert "symlink" in message


def test_symlink_to_a_file_inside_the_project_is_bundled_as_a_copy(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "p", BASE)
    (root / "data" / "alias.json").symlink_to("params.json")
    bundle = build_bundle(root, "model")
    entries = {f.path: f for f in bundle.config.files}
    assert entries["data/alias.json"].digest == entries["data/params.json"].digest
    member = {m.name: m for m in tree_members(bundle)}["data/alias.json"]
    assert member.isreg()


def test_ignored_symlink_is_fine(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "p", {**BASE, ".modelopsignore": "outside-link\n"})
    (root / "outside-link").symlink_to(tmp_path)
    assert "outside-link" not in paths(build_bundle(root, "model"))


def test_dangling_symlink_is_refused_as_bad_bundle(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "p", BASE)
    (root / "data" / "gone.csv").symlink_to("missing.csv")
    assert "gone.csv" in build_error(root)


def test_fifo_is_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "p", BASE)
    os.mkfifo(root / "pipe")
    message = build_error(root)
    assert "pipe" in message
    assert "not a regular file" in message


def test_project_that_is_not_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    build_error(tmp_path / "file")
    build_error(tmp_path / "missing")


# --- repository names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "repository"),
    [
        ("My_Model", "my-model"),
        ("sir", "sir"),
        ("SIR.Model v2", "sir-model-v2"),
        ("--weird__name--", "weird-name"),
    ],
)
def test_repository_from_pyproject_name(tmp_path: Path, name: str, repository: str) -> None:
    files = {**BASE, "pyproject.toml": f'[project]\nname = "{name}"\n'}
    assert build_bundle(write_tree(tmp_path / "folder", files)).ref.repository == repository


@pytest.mark.parametrize(
    ("folder", "repository"),
    [("SEIR_Model", "seir-model"), ("my model.v1", "my-model-v1"), ("___", "bundle")],
)
def test_repository_from_folder_name(tmp_path: Path, folder: str, repository: str) -> None:
    assert build_bundle(write_tree(tmp_path / folder, BASE)).ref.repository == repository


def test_explicit_repository_wins_and_does_not_change_the_digest(tmp_path: Path) -> None:
    files = {**BASE, "pyproject.toml": '[project]\nname = "My_Model"\n'}
    root = write_tree(tmp_path / "p", files)
    named = build_bundle(root, repository="team/sir")
    derived = build_bundle(root)
    assert named.ref.repository == "team/sir"
    assert derived.ref.repository == "my-model"
    assert named.ref.digest == derived.ref.digest


def test_invalid_explicit_repository_is_a_bad_reference(tmp_path: Path) -> None:
    with pytest.raises(ModelOpsError) as excinfo:
        build_bundle(write_tree(tmp_path / "p", BASE), repository="Not Valid")
    assert excinfo.value.info.error_class is ErrorClass.BAD_REFERENCE
