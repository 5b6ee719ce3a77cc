"""Every row of the runtime's failure table, checked from the command line by its class."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.test_mops_cli import sim_json
from tests.conftest import write_project

WIRE = """
import os, time

def wire(entrypoint, params, seed):
    if entrypoint == "exit":
        os._exit(3)
    if entrypoint == "hang":
        time.sleep(600)
    if entrypoint == "grow":
        hog = [b"x" * (20 << 20) for _ in range(40)]
        time.sleep(600)
    if entrypoint == "text":
        return {"answer": "forty-two"}
    if entrypoint == "raise":
        raise RuntimeError("no")
    return {"ok": b"1"}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("cli-failures") / "model", {"wire.py": WIRE})


@pytest.mark.parametrize(
    ("args", "error_class", "message_start"),
    [
        (["-e", "raise"], "model", "RuntimeError: no"),
        (["-e", "exit"], "crash", "exit code 3"),
        (["-e", "hang", "--timeout", "1"], "timeout", "timeout after 1 s"),
        (
            ["-e", "grow", "--memory-limit", "200MB", "--isolation", "cold"],
            "oom",
            "out of memory: used ",
        ),
        (["-e", "text"], "bad_output", "wire output 'answer' is str"),
    ],
)
def test_failure_classes_from_the_command_line(
    project: Path, args: list[str], error_class: str, message_start: str
) -> None:
    code, doc = sim_json(str(project), *args)
    assert code == 1
    assert doc["status"] == "error"
    assert doc["error"]["class"] == error_class
    assert doc["error"]["message"].startswith(message_start)


def test_missing_dependency_from_the_command_line(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "lacking", {"wire.py": "import sklearn\n\ndef wire(e, p, s):\n    return {}\n"}
    )
    code, doc = sim_json(str(project))
    assert code == 1
    assert doc["error"]["class"] == "missing_dependency"
    assert "no module named 'sklearn'" in doc["error"]["message"]


def test_bad_limits_are_refused_before_anything_runs(project: Path) -> None:
    code, doc = sim_json(str(project), "--isolation", "lukewarm")
    assert code == 1 and doc["error"]["class"] == "bad_input"
    assert "isolation must be one of warm, recycle, cold" in doc["error"]["message"]
    assert doc["bundle"] is None
    code, doc = sim_json(str(project), "--memory-limit", "lots")
    assert code == 1 and "is not a size like 512MB" in doc["error"]["message"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cluster", "k8s"], "no cluster kind 'k8s'; the kinds are embedded, scheduler, slurm"),
        (["--cluster", "scheduler"], "the cluster kind 'scheduler' needs an address"),
        (["--scheduler", "tls://127.0.0.1:1"], "is a TLS scheduler but no certificates are set"),
    ],
)
def test_an_unusable_cluster_choice_is_refused_before_anything_is_built(
    project: Path, args: list[str], message: str
) -> None:
    code, doc = sim_json(str(project), *args)
    assert code == 1 and doc["error"]["class"] == "bad_input"
    assert message in doc["error"]["message"]
    assert doc["bundle"] is None  # refused before the folder was built and published
