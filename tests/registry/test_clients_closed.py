"""Each call that opens a registry client for itself closes it when it ends: no connection
pool is left behind by `pull`, `inspect`, `list_bundles`, `resolve` or `check_bundle`."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import SMOKE_BUNDLE
from tests.registry_servers import RunningRegistry

from modelops import api
from modelops.bundle.registry import RegistryClient


def test_every_call_closes_the_registry_client_it_opened(
    registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = api.push(SMOKE_BUNDLE, registry.host, repository="closed-clients").ref
    monkeypatch.setenv("MODELOPS_BUNDLE_REGISTRY", registry.host)
    opened: list[RegistryClient] = []
    closed: list[RegistryClient] = []
    real_init, real_close = RegistryClient.__init__, RegistryClient.close

    def counting_init(self: RegistryClient, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        opened.append(self)

    def counting_close(self: RegistryClient) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(RegistryClient, "__init__", counting_init)
    monkeypatch.setattr(RegistryClient, "close", counting_close)

    calls = {
        "inspect": lambda: api.inspect(str(ref)),
        "list_bundles": lambda: api.list_bundles(),
        "pull": lambda: api.pull(str(ref), tmp_path / "pulled"),
        "resolve": lambda: api.resolve(str(ref)),
        "check_bundle": lambda: api.check_bundle(str(ref)),
    }
    for name, call in calls.items():
        before = len(opened)
        call()
        made = opened[before:]
        assert made, f"{name} opened no registry client"
        assert all(client in closed for client in made), f"{name} left a client open"
