"""No secret reaches a model's process: the child's environment is allow-listed."""

from __future__ import annotations

import json
import os

import pytest

from modelops.contracts import BundleRef, ErrorClass, Isolation, RunLimits, SimTask
from modelops.runtime import TaskRunner

PRINT_ENV = """
import json, os, sys

def wire(entrypoint, params, seed):
    print("\\n".join(f"{k}={v}" for k, v in sorted(os.environ.items())))
    return {"env": json.dumps(dict(os.environ)).encode()}
"""

SECRET = "hunter2-do-not-leak"


@pytest.fixture
def print_env(make_bundle) -> BundleRef:
    return make_bundle({"wire.py": PRINT_ENV}, name="print-env")


def child_env(runner: TaskRunner, ref: BundleRef) -> tuple[dict[str, str], str]:
    # cold: a child started for this task, with the environment the worker has now
    limits = RunLimits(isolation=Isolation.COLD, retries=0)
    result = runner.run(SimTask(ref, "", {}, seed=1, limits=limits))
    assert result.ok, result.error
    return json.loads(result.outputs["env"].data), result.logs


def test_a_child_gets_what_it_needs_and_no_secret(
    runner: TaskRunner, print_env: BundleRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "MODELOPS_REGISTRY_PASSWORD",
        "MODELOPS_REGISTRY_USERNAME",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
        "DB_PASSWORD",
        "AZURE_CLIENT_SECRET",
        "SOME_WORKER_SETTING",
    ):
        monkeypatch.setenv(name, SECRET)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("TMPDIR", "/tmp")

    env, logs = child_env(runner, print_env)

    assert not [name for name, value in env.items() if SECRET in value]
    assert SECRET not in logs
    assert "DOCKER_CONFIG" not in env  # set by the test suite for every test
    assert "MODELOPS_HOME" not in env
    assert env["PATH"].split(os.pathsep)[0] == os.path.join(env["VIRTUAL_ENV"], "bin")
    assert env["HOME"] == os.environ["HOME"]
    assert env["LANG"] == env["LC_ALL"] == "C.UTF-8"
    assert env["https_proxy"] == "http://proxy.example:3128"
    assert env["TMPDIR"] == "/tmp"
    assert env["OMP_NUM_THREADS"] == "1"
    assert os.path.isabs(env["MODELOPS_SCRATCH"])


def test_an_operator_passes_more_variables_but_never_registry_credentials(
    runner: TaskRunner, print_env: BundleRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_DATA_DIR", "/data/models")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("MODELOPS_REGISTRY_PASSWORD", SECRET)
    monkeypatch.setenv("MODELOPS_CHILD_ENV", "MODEL_DATA_DIR, SLURM_*")
    env, _ = child_env(runner, print_env)
    assert env["MODEL_DATA_DIR"] == "/data/models"
    assert env["SLURM_JOB_ID"] == "42"
    assert "MODELOPS_CHILD_ENV" not in env

    monkeypatch.setenv("MODELOPS_CHILD_ENV", "MODEL_DATA_DIR,MODELOPS_REGISTRY_PASSWORD")
    refused = runner.run(SimTask(print_env, "", {}, seed=2, limits=RunLimits(retries=0)))
    assert refused.error is not None
    assert refused.error.error_class is ErrorClass.BAD_INPUT
    assert refused.error.message == (
        "MODELOPS_CHILD_ENV names MODELOPS_REGISTRY_PASSWORD: ModelOps never passes its "
        "registry credentials to a model; remove it from MODELOPS_CHILD_ENV"
    )
    assert SECRET not in refused.error.traceback
