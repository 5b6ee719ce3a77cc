"""`mops bundle …` against a real registry, as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_mops_cli import mops
from tests.conftest import SMOKE_BUNDLE, write_project
from tests.registry_servers import RunningRegistry


def test_build_gives_the_same_digest_for_the_same_tree(tmp_path: Path) -> None:
    first = mops("bundle", "build", str(SMOKE_BUNDLE))
    copy = write_project(
        tmp_path / "copy",
        {p.name: p.read_text() for p in SMOKE_BUNDLE.iterdir() if p.is_file()},
    )
    second = mops("bundle", "build", str(copy), "--repository", "smoke-bundle")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert first.stdout.startswith("smoke-bundle@sha256:")


def test_push_twice_then_inspect_list_and_pull(registry: RunningRegistry, tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "cli-model",
        {"wire.py": "def wire(e, p, s):\n    return {}\n", "data/table.csv": "a,b\n1,2\n"},
    )
    pushed = mops("bundle", "push", str(project), "--registry", registry.host, "--tag", "v1")
    again = mops("bundle", "push", str(project), "--registry", registry.host, "--tag", "v1")
    assert pushed.returncode == 0, pushed.stderr
    ref = pushed.stdout.strip()
    assert ref.startswith("cli-model@sha256:") and again.stdout.strip() == ref
    assert "uploaded 2 of 2 blobs" in pushed.stderr
    assert "nothing to upload: all 2 blobs already in" in again.stderr

    inspected = mops("bundle", "inspect", "cli-model:v1", "--registry", registry.host, "--json")
    assert inspected.returncode == 0, inspected.stderr
    description = json.loads(inspected.stdout)
    assert description["bundle"] == ref
    assert description["wire"] == "wire:wire"
    assert [f["path"] for f in description["files"]] == ["data/table.csv", "wire.py"]
    assert description["environment"]["kind"] == "none"

    listed = mops("bundle", "list", "--registry", registry.host)
    assert "cli-model\tv1" in listed.stdout.splitlines()

    dest = tmp_path / "pulled"
    pulled = mops("bundle", "pull", ref, "--registry", registry.host, "--dest", str(dest))
    assert pulled.returncode == 0, pulled.stderr
    assert (dest / "data" / "table.csv").read_text() == "a,b\n1,2\n"
    refused = mops("bundle", "pull", ref, "--registry", registry.host, "--dest", str(dest))
    assert refused.returncode == 1
    assert "already exists and is not empty" in refused.stderr


def test_registry_with_a_repository_path_is_refused_with_the_fix(
    registry: RunningRegistry,
) -> None:
    done = mops("bundle", "push", str(SMOKE_BUNDLE), "--registry", f"{registry.host}/models")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"bad_input: registry '{registry.host}/models' includes a repository path ('models'); "
        f"set the registry to the host only (MODELOPS_BUNDLE_REGISTRY={registry.host}) and pass "
        "the repository with --repository"
    )


def test_bundle_check_lists_the_models_of_an_sdk_project() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "sir"
    done = mops("bundle", "check", str(example))
    assert done.returncode == 0, done.stderr
    assert "model:SIR" in done.stdout
    assert "scenarios  lockdown, vaccination" in done.stdout
    assert "outputs    incidence, prevalence" in done.stdout
    for parameter in ("beta", "gamma", "population"):
        assert parameter in done.stdout
    assert (
        "entrypoints  model:SIR (the default), model:SIR/lockdown, model:SIR/vaccination"
        in done.stdout.splitlines()
    )


def test_bundle_check_of_a_plain_wire_names_it_and_never_calls_it(tmp_path: Path) -> None:
    called = tmp_path / "called"
    project = write_project(
        tmp_path / "plain-wire",
        {
            "wire.py": f"""
                import pathlib


                def wire(entrypoint, params, seed):
                    pathlib.Path({str(called)!r}).write_text(entrypoint)
                    raise RuntimeError("bundle check must not call the wire")
            """,
        },
    )
    done = mops("bundle", "check", str(project))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("bundle  plain-wire@sha256:")
    assert lines[1:] == [
        "wire.py:wire — not an SDK bundle: its entrypoints are whatever its wire function accepts"
    ]
    assert not called.exists()


def test_bundle_check_of_a_plain_wire_with_a_missing_dependency_fails(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "plain-broken",
        {"wire.py": "import not_installed_anywhere\n\n\ndef wire(e, p, s):\n    return {}\n"},
    )
    done = mops("bundle", "check", str(project))
    assert done.returncode == 1
    assert done.stderr.startswith(
        "missing_dependency: missing dependency: no module named 'not_installed_anywhere' "
        "(imported by wire module 'wire')"
    ), done.stderr


def test_bundle_check_of_a_folder_without_models_says_what_to_add(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "plain",
        {
            "model.py": "x = 1\n",
            "pyproject.toml": '[project]\nname = "plain"\nversion = "1"\n'
            'dependencies = ["pyarrow"]\n[tool.modelops]\nwire = "modelops.sdk:wire"\n',
        },
    )
    done = mops("bundle", "check", str(project))
    assert done.returncode == 1
    assert "no models declared" in done.stderr
    assert "models = " in done.stderr


def test_list_shows_a_repository_that_holds_only_untagged_bundles(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    project = write_project(
        tmp_path / "untagged", {"wire.py": "def wire(e, p, s):\n    return {}\n"}
    )
    pushed = mops("bundle", "push", str(project), "--registry", registry.host)
    assert pushed.returncode == 0, pushed.stderr
    listed = mops("bundle", "list", "--registry", registry.host)
    assert listed.returncode == 0, listed.stderr
    assert "untagged\t" in listed.stdout.splitlines()
