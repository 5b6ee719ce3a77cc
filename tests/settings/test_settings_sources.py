"""One configuration: flag > environment > the project's modelops.toml > the user's config
file > default, each value with the source it came from, and a one-line error for anything
that cannot be used (the file, the key and what it takes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.settings import PROJECT_FILE, Settings


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(folder))
    for name in ("MODELOPS_RESULTS", "MODELOPS_CACHE_MAX_GB", "MODELOPS_CHILD_THREADS"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "user" / "config.toml"
    path.parent.mkdir()
    monkeypatch.setenv("MODELOPS_CONFIG", str(path))
    return path


def test_each_setting_comes_from_the_first_source_that_has_it(
    project: Path, user_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_config.write_text(
        '[cluster]\nscheduler = "tcp://user:8786"\n[registry]\nhost = "user.example:5000"\n'
        "[cache]\nmax_gb = 7\n"
    )
    (project / PROJECT_FILE).write_text(
        '[cluster]\nscheduler = "tcp://project:8786"\n[cache]\nmax_gb = 12.5\n'
    )
    monkeypatch.setenv("MODELOPS_CACHE_MAX_GB", "3")

    settings = Settings.from_env()

    assert settings.scheduler == "tcp://project:8786"  # project file over user file
    assert settings.bundle_registry == "user.example:5000"  # only the user file has it
    assert settings.cache_max_gb == 3.0  # environment over both files
    assert settings.child_threads == 1  # no source: the default
    assert settings.sources["scheduler"] == str(project / PROJECT_FILE)
    assert settings.sources["bundle_registry"] == str(user_config)
    assert settings.sources["cache_max_gb"] == "environment"
    assert settings.sources["child_threads"] == "default"


def test_a_relative_path_in_a_file_is_relative_to_that_file(
    project: Path, user_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELOPS_HOME")
    (project / PROJECT_FILE).write_text('[tls]\nca = "certs/ca.pem"\n[cache]\nhome = "../home"\n')
    settings = Settings.from_env()
    assert settings.tls_ca == project / "certs" / "ca.pem"
    assert settings.home == (project.parent / "home").resolve()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[cache]\nmax_gb = -1\n", "cache.max_gb = -1 is not usable: expected a positive number"),
        ("[runtime]\nchild_threads = 1.5\n", "runtime.child_threads = 1.5 is not usable"),
        ('[registry]\ninsecure = "maybe"\n', "registry.insecure = 'maybe' is not usable"),
        ('[cluster]\nschedular = "tcp://x:1"\n', "no setting 'cluster.schedular'; the settings"),
        ("[cluster]\n", ""),  # an empty table is fine
        ("scheduler = 'tcp://x:1'\n", "no setting 'scheduler'"),
        ("[cluster\n", "not valid TOML"),
        ('[registry]\npassword = "s3cret"\n', "secrets are never read from config files"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file_and_key(
    project: Path, user_config: Path, text: str, message: str
) -> None:
    (project / PROJECT_FILE).write_text(text)
    if not message:
        assert Settings.from_env().scheduler is None
        return
    with pytest.raises(ModelOpsError) as raised:
        Settings.from_env()
    info = raised.value.info
    assert info.error_class is ErrorClass.BAD_INPUT
    assert info.message.startswith(f"{project / PROJECT_FILE}: ")
    assert message in info.message and "\n" not in info.message
    assert "s3cret" not in info.message


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("yes", True), ("off", False)])
def test_insecure_takes_the_usual_spellings(
    project: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("MODELOPS_REGISTRY_INSECURE", value)
    assert Settings.from_env().registry_insecure is expected


def test_an_unknown_insecure_value_is_refused_not_taken_as_false(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_REGISTRY_INSECURE", "ture")
    with pytest.raises(ModelOpsError, match=r"MODELOPS_REGISTRY_INSECURE='ture' is not usable"):
        Settings.from_env()


def test_config_show_names_every_source_and_hides_the_password(
    project: Path, user_config: Path
) -> None:
    user_config.write_text('[results]\nurl = "memory://results"\n')
    (project / PROJECT_FILE).write_text('[cluster]\nscheduler = "tls://sched:8786"\n')
    env = {
        **os.environ,
        "MODELOPS_CHILD_THREADS": "2",
        "MODELOPS_REGISTRY_USERNAME": "ann",
        "MODELOPS_REGISTRY_PASSWORD": "pw-do-not-show",
    }
    done = subprocess.run(
        [sys.executable, "-m", "modelops.cli", "config", "show", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
    )
    assert done.returncode == 0, done.stderr
    assert "pw-do-not-show" not in done.stdout + done.stderr
    shown = {row["setting"]: row for row in json.loads(done.stdout)["settings"]}
    assert shown["cluster.scheduler"]["value"] == "tls://sched:8786"
    assert shown["cluster.scheduler"]["source"] == str(project / PROJECT_FILE)
    assert shown["results.url"]["source"] == str(user_config)
    assert shown["runtime.child_threads"] == {
        "setting": "runtime.child_threads",
        "variable": "MODELOPS_CHILD_THREADS",
        "value": "2",
        "source": "environment",
    }
    assert shown["cache.max_gb"]["source"] == "default"
    assert shown["registry_username"]["value"] == "ann"
    assert shown["registry_password"]["value"] == "******** (hidden)"
    table = subprocess.run(
        [sys.executable, "-m", "modelops.cli", "config", "show"],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "80"},
        cwd=project,
    )
    assert table.returncode == 0 and "pw-do-not-show" not in table.stdout
    assert "…" not in table.stdout


def test_the_configuration_page_lists_every_setting_and_variable() -> None:
    from modelops.settings import SETTINGS

    page = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    missing = [s.env for s in SETTINGS if s.env not in page or f"`{s.key_text}" not in page]
    assert missing == []
