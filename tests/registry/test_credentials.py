"""Where registry credentials come from, `mops bundle login`, and that secrets stay secret.

The order is: explicit username/password, then MODELOPS_REGISTRY_USERNAME/PASSWORD, then
Docker's config.json (`credHelpers`, `credsStore`, `auths`), else anonymous. Each link is
proven against a real htpasswd or token registry: a wrong password in a link that should lose
must not matter, a wrong one in the link that should win must fail.

Credential helpers are real programs (a small Python script speaking Docker's helper protocol)
put first on PATH; the CLI is run as a user runs it, in a subprocess.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import SMOKE_BUNDLE
from tests.registry_servers import RunningRegistry

from modelops import api
from modelops.api import Registry
from modelops.bundle.registry import RegistryHost, resolve_credentials
from modelops.bundle.registry.credentials import (
    PASSWORD_ENV,
    USERNAME_ENV,
    docker_config_path,
)
from modelops.bundle.store_in_use import registry_client
from modelops.contracts import ErrorClass, ModelOpsError

MOPS = [sys.executable, "-m", "modelops.cli"]
HELPER = "modelopstest"
REF_LINE = re.compile(r"smoke-bundle@sha256:[0-9a-f]{64}")

HELPER_SCRIPT = '''#!{python}
"""docker-credential-{name}: Docker's credential-helper protocol, secrets in a JSON file."""
import json
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
store = here / "{name}-store.json"
calls = here / "{name}-calls.jsonl"
action = sys.argv[1] if len(sys.argv) > 1 else ""
text = sys.stdin.read()
data = json.loads(store.read_text()) if store.exists() else {{}}
server = json.loads(text)["ServerURL"] if action == "store" else text.strip()
with calls.open("a") as log:
    log.write(json.dumps({{"action": action, "server": server}}) + "\\n")
if action == "get":
    entry = data.get(server)
    if entry is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    if entry.get("fail"):
        print("the keychain is locked", file=sys.stderr)
        sys.exit(3)
    print(json.dumps({{"ServerURL": server, "Username": entry["Username"],
                      "Secret": entry["Secret"]}}))
elif action == "store":
    payload = json.loads(text)
    data[server] = {{"Username": payload["Username"], "Secret": payload["Secret"]}}
    store.write_text(json.dumps(data))
elif action == "erase":
    data.pop(server, None)
    store.write_text(json.dumps(data))
else:
    print(f"unknown action {{action!r}}", file=sys.stderr)
    sys.exit(2)
'''


# --- helpers ---------------------------------------------------------------------------------


def b64(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def wrong_password() -> str:
    return f"wrong-{secrets.token_urlsafe(12)}"


def user_and_password(registry: RunningRegistry) -> tuple[str, str]:
    assert registry.username is not None and registry.password is not None
    return registry.username, registry.password


def write_docker_config(config: dict) -> Path:
    path = docker_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return path


def read_docker_config() -> dict:
    return json.loads(docker_config_path().read_text())


def pushes(registry: RunningRegistry, **explicit: str) -> bool:
    """Push the smoke bundle with whatever credentials resolve; False on an auth failure."""
    try:
        report = api.push(SMOKE_BUNDLE, registry=Registry(registry.host, **explicit))
    except ModelOpsError as exc:
        assert exc.info.error_class is ErrorClass.REGISTRY_AUTH, exc
        assert f"authentication failed for {registry.host}" in exc.info.message
        return False
    assert report.ref.repository == "smoke-bundle"
    return True


def authenticates(registry: RunningRegistry) -> bool:
    """GET /v2/ with the credentials that resolve: the registry's own verdict on them."""
    try:
        with registry_client(registry.host) as client:
            client.check()
    except ModelOpsError as exc:
        assert exc.info.error_class is ErrorClass.REGISTRY_AUTH, exc
        return False
    return True


def source_of(registry: RunningRegistry, **explicit: str) -> str | None:
    found = resolve_credentials(RegistryHost.parse(registry.host), **explicit)
    return None if found is None else found.source


@dataclass
class CredentialHelper:
    name: str
    folder: Path

    @property
    def binary(self) -> Path:
        return self.folder / f"docker-credential-{self.name}"

    def seed(self, server: str, username: str, secret: str) -> None:
        data = self.stored()
        data[server] = {"Username": username, "Secret": secret}
        (self.folder / f"{self.name}-store.json").write_text(json.dumps(data))

    def seed_failure(self, server: str) -> None:
        data = self.stored()
        data[server] = {"fail": True}
        (self.folder / f"{self.name}-store.json").write_text(json.dumps(data))

    def stored(self) -> dict:
        path = self.folder / f"{self.name}-store.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def calls(self) -> list[dict]:
        path = self.folder / f"{self.name}-calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def cred_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CredentialHelper:
    """`docker-credential-modelopstest`, a real executable, first on PATH."""
    folder = tmp_path / "helper-bin"
    folder.mkdir()
    helper = CredentialHelper(HELPER, folder)
    helper.binary.write_text(HELPER_SCRIPT.format(python=sys.executable, name=HELPER))
    helper.binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return helper


def mops(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, hidden: list[str]
) -> subprocess.CompletedProcess[str]:
    """Run `mops` in a subprocess; whatever happens, none of `hidden` may be printed."""
    environment = os.environ.copy()
    environment.update(env or {})
    done = subprocess.run(
        [*MOPS, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    for secret in hidden:
        assert secret not in done.stdout, f"secret printed on stdout by mops {args}"
        assert secret not in done.stderr, f"secret printed on stderr by mops {args}"
    return done


def files_containing(root: Path, needles: list[bytes]) -> list[str]:
    """Files under `root` (symlinks not followed) whose bytes contain any of `needles`."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            found += [str(path) for needle in needles if needle in data]
    return found


# --- nothing configured ------------------------------------------------------------------------


def test_nothing_configured_means_anonymous(
    basic_registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not docker_config_path().exists()
    assert source_of(basic_registry) is None
    assert not authenticates(basic_registry)  # anonymous really is refused by this registry

    # An empty config, or one for other registries only, is nothing configured either.
    write_docker_config({})
    assert source_of(basic_registry) is None
    write_docker_config(
        {
            "auths": {
                "other.example.com": {"auth": b64("someone", "secret")},
                "127.0.0.1:1": {"auth": b64("someone", "secret")},
            }
        }
    )
    assert source_of(basic_registry) is None

    # Half of a pair is a mistake to point out, not a reason to go anonymous.
    with pytest.raises(ModelOpsError) as explicit:
        source_of(basic_registry, username="someone")
    assert "without a password; pass --password-stdin" in str(explicit.value)
    monkeypatch.setenv(USERNAME_ENV, "someone")
    with pytest.raises(ModelOpsError) as from_env:
        source_of(basic_registry)
    assert f"{USERNAME_ENV} is set but {PASSWORD_ENV} is not" in str(from_env.value)


def test_auth_value_is_split_at_the_first_colon(basic_registry: RunningRegistry) -> None:
    write_docker_config({"auths": {basic_registry.host: {"auth": b64("someone", "p:a:ss")}}})
    found = resolve_credentials(RegistryHost.parse(basic_registry.host))
    assert found is not None
    assert (found.username, found.password) == ("someone", "p:a:ss")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "is not valid JSON"),
        (json.dumps({"auths": {"HOST": {"auth": "not base64!!"}}}), "not base64 of user:password"),
    ],
)
def test_unreadable_docker_config_is_bad_input(
    basic_registry: RunningRegistry, text: str, says: str
) -> None:
    path = docker_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.replace("HOST", basic_registry.host))
    with pytest.raises(ModelOpsError) as caught:
        resolve_credentials(RegistryHost.parse(basic_registry.host))
    assert caught.value.info.error_class is ErrorClass.BAD_INPUT
    assert str(path) in caught.value.info.message
    assert says in caught.value.info.message


@pytest.mark.parametrize("text", ["[]", '"auths"', "42", "null", "true"])
def test_docker_config_that_is_not_a_json_object_is_named(
    basic_registry: RunningRegistry, text: str
) -> None:
    """Before: an AttributeError ('list' object has no attribute 'get') from deep inside."""
    path = docker_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    user, password = user_and_password(basic_registry)
    for attempt in (
        lambda: resolve_credentials(RegistryHost.parse(basic_registry.host)),
        lambda: api.push(SMOKE_BUNDLE, registry=basic_registry.host),
        lambda: api.login(Registry(basic_registry.host, user, password)),
    ):
        with pytest.raises(ModelOpsError) as caught:
            attempt()
        info = caught.value.info
        assert info.error_class is ErrorClass.BAD_INPUT
        assert info.message.startswith(f"{path} holds a JSON ")
        assert "not an object; fix or remove it" in info.message
        assert "\n" not in info.message
    assert path.read_text() == text  # login wrote nothing over it


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"auths": ["HOST"]}, "'auths' is a JSON array, not an object"),
        ({"auths": {"HOST": "SECRET"}}, "auths['HOST'] is a JSON string, not an object"),
        ({"credHelpers": {"HOST": ["SECRET"]}}, "credHelpers['HOST'] is a JSON array"),
        ({"credsStore": {"name": "SECRET"}}, "'credsStore' is a JSON object, not a string"),
        ({"auths": {"HOST": {"auth": ["SECRET"]}}}, "(a JSON array, not a string)"),
        ({"auths": {"HOST": {"identitytoken": ["SECRET"]}}}, "'identitytoken' is a JSON array"),
    ],
)
def test_docker_config_with_a_wrong_kind_of_value_is_named(
    basic_registry: RunningRegistry, config: dict, says: str
) -> None:
    secret = wrong_password()
    text = json.dumps(config).replace("HOST", basic_registry.host).replace("SECRET", secret)
    path = docker_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with pytest.raises(ModelOpsError) as caught:
        resolve_credentials(RegistryHost.parse(basic_registry.host))
    info = caught.value.info
    assert info.error_class is ErrorClass.BAD_INPUT
    assert str(path) in info.message
    assert says.replace("HOST", basic_registry.host) in info.message
    assert secret not in str(caught.value) + info.traceback


@pytest.mark.parametrize(
    ("auth", "says"),
    [
        ("!!!!{secret}!!!!", "not valid base64"),  # dropped by a lax decoder: empty credentials
        ("@@@@", "not valid base64"),
        ("{b64_no_colon}", "no ':' between user and password"),
        ("{b64_latin1}", "not UTF-8"),
        ("{b64_pair}=", "not valid base64"),  # too much padding
    ],
    ids=["junk", "all-invalid", "no-colon", "not-utf8", "bad-padding"],
)
def test_docker_auth_value_that_is_not_base64_of_a_pair_is_named_never_shown(
    basic_registry: RunningRegistry, auth: str, says: str
) -> None:
    """Before: a value a lax base64 decoder reduced to nothing (or to a user name without a
    password) gave empty or half credentials, silently, and a 401 that blamed the login."""
    secret = f"s3cret{secrets.token_hex(4)}"
    value = auth.format(
        secret=secret,
        b64_no_colon=base64.b64encode(f"user-{secret}".encode()).decode(),
        b64_latin1=base64.b64encode(f"user:{secret}\xe9".encode("latin-1")).decode(),
        b64_pair=b64("user", secret),
    )
    path = write_docker_config({"auths": {basic_registry.host: {"auth": value}}})
    for attempt in (
        lambda: resolve_credentials(RegistryHost.parse(basic_registry.host)),
        lambda: api.push(SMOKE_BUNDLE, registry=basic_registry.host),
    ):
        with pytest.raises(ModelOpsError) as caught:
            attempt()
        info = caught.value.info
        assert info.error_class is ErrorClass.BAD_INPUT
        assert info.message.startswith(f"{path} (auths[{basic_registry.host!r}]): the 'auth' ")
        assert "not base64 of user:password" in info.message
        assert says in info.message
        assert "\n" not in info.message
        said = str(caught.value) + repr(caught.value) + info.traceback
        assert secret not in said and value not in said


def test_docker_auth_value_with_line_breaks_is_read_as_docker_reads_it(
    basic_registry: RunningRegistry,
) -> None:
    """Go's base64 (Docker's) skips line breaks: such a file works for docker, and here."""
    user, password = user_and_password(basic_registry)
    encoded = b64(user, password)
    write_docker_config(
        {"auths": {basic_registry.host: {"auth": encoded[:8] + "\n" + encoded[8:]}}}
    )
    found = resolve_credentials(RegistryHost.parse(basic_registry.host))
    assert found is not None and (found.username, found.password) == (user, password)
    assert authenticates(basic_registry)


# --- the order of the chain --------------------------------------------------------------------


def test_explicit_credentials_beat_environment_and_docker_config(
    basic_registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, password = user_and_password(basic_registry)
    write_docker_config({"auths": {basic_registry.host: {"auth": b64(user, wrong_password())}}})
    monkeypatch.setenv(USERNAME_ENV, user)
    monkeypatch.setenv(PASSWORD_ENV, wrong_password())

    assert source_of(basic_registry, username=user, password=password) == "command line"
    assert pushes(basic_registry, username=user, password=password)

    # The other way round: right below, wrong on the command line -> the command line decides.
    write_docker_config({"auths": {basic_registry.host: {"auth": b64(user, password)}}})
    monkeypatch.setenv(PASSWORD_ENV, password)
    assert authenticates(basic_registry)
    assert not pushes(basic_registry, username=user, password=wrong_password())


def test_environment_beats_docker_config(
    basic_registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, password = user_and_password(basic_registry)
    write_docker_config({"auths": {basic_registry.host: {"auth": b64(user, wrong_password())}}})
    monkeypatch.setenv(USERNAME_ENV, user)
    monkeypatch.setenv(PASSWORD_ENV, password)
    assert source_of(basic_registry) == f"{USERNAME_ENV}/{PASSWORD_ENV}"
    assert pushes(basic_registry)

    write_docker_config({"auths": {basic_registry.host: {"auth": b64(user, password)}}})
    monkeypatch.setenv(PASSWORD_ENV, wrong_password())
    assert not pushes(basic_registry)

    # Without the environment, the same config.json is what is used.
    monkeypatch.delenv(USERNAME_ENV)
    monkeypatch.delenv(PASSWORD_ENV)
    assert "config.json" in (source_of(basic_registry) or "")
    assert pushes(basic_registry)


@pytest.mark.parametrize("key_form", ["{host}", "https://{host}", "http://{host}"])
@pytest.mark.parametrize("entry_form", ["auth", "username/password"])
def test_docker_config_auths_entry(
    basic_registry: RunningRegistry, key_form: str, entry_form: str
) -> None:
    user, password = user_and_password(basic_registry)
    key = key_form.format(host=basic_registry.host)
    entry = (
        {"auth": b64(user, password)}
        if entry_form == "auth"
        else {"username": user, "password": password}
    )
    write_docker_config({"auths": {key: entry}})

    found = resolve_credentials(RegistryHost.parse(basic_registry.host))
    assert found is not None
    assert (found.username, found.password) == (user, password)
    assert str(docker_config_path()) in found.source and repr(key) in found.source
    assert password not in repr(found)
    assert authenticates(basic_registry)


def test_docker_config_auths_lets_a_push_through(basic_registry: RunningRegistry) -> None:
    user, password = user_and_password(basic_registry)
    write_docker_config(
        {"auths": {f"https://{basic_registry.host}": {"auth": b64(user, password)}}}
    )
    assert pushes(basic_registry)
    write_docker_config({"auths": {basic_registry.host: {"username": user, "password": "nope"}}})
    assert not pushes(basic_registry)


def test_docker_config_for_a_token_registry(token_registry: RunningRegistry) -> None:
    user, password = user_and_password(token_registry)
    write_docker_config({"auths": {token_registry.host: {"auth": b64(user, password)}}})
    before = token_registry.tokens_issued
    assert pushes(token_registry)
    assert token_registry.tokens_issued > before


# --- credential helpers ----------------------------------------------------------------------


def test_cred_helpers_entry_runs_the_helper(
    basic_registry: RunningRegistry, cred_helper: CredentialHelper
) -> None:
    user, password = user_and_password(basic_registry)
    cred_helper.seed(basic_registry.host, user, password)
    # credHelpers is asked before auths: the wrong auths entry must not be used.
    write_docker_config(
        {
            "credHelpers": {basic_registry.host: HELPER},
            "auths": {basic_registry.host: {"auth": b64(user, wrong_password())}},
        }
    )
    assert source_of(basic_registry) == f"credential helper {HELPER!r}"
    assert pushes(basic_registry)
    assert {"action": "get", "server": basic_registry.host} in cred_helper.calls()


def test_creds_store_runs_the_helper(
    basic_registry: RunningRegistry, cred_helper: CredentialHelper
) -> None:
    user, password = user_and_password(basic_registry)
    cred_helper.seed(basic_registry.host, user, password)
    write_docker_config({"credsStore": HELPER})
    assert source_of(basic_registry) == f"credential helper {HELPER!r}"
    assert pushes(basic_registry)
    assert {"action": "get", "server": basic_registry.host} in cred_helper.calls()


def test_cred_helper_for_a_token_registry(
    token_registry: RunningRegistry, cred_helper: CredentialHelper
) -> None:
    user, password = user_and_password(token_registry)
    cred_helper.seed(token_registry.host, user, password)
    write_docker_config({"credHelpers": {token_registry.host: HELPER}})
    assert pushes(token_registry)


def test_cred_helper_holding_an_identity_token_for_a_token_registry(
    token_registry: RunningRegistry, cred_helper: CredentialHelper
) -> None:
    """Docker keeps an identity token (`az acr login` with a credsStore) in a helper under
    the user name `<token>`: it is traded by the refresh-token grant, not sent as a password."""
    assert token_registry.refresh_token is not None
    cred_helper.seed(token_registry.host, "<token>", token_registry.refresh_token)
    write_docker_config({"credsStore": HELPER})
    found = resolve_credentials(RegistryHost.parse(token_registry.host))
    assert found is not None and found.identity_token == token_registry.refresh_token
    before = token_registry.grants("refresh_token")
    assert pushes(token_registry)
    assert token_registry.grants("refresh_token") > before


def test_helper_without_credentials_for_the_host_means_anonymous(
    basic_registry: RunningRegistry, cred_helper: CredentialHelper
) -> None:
    user, password = user_and_password(basic_registry)
    cred_helper.seed("elsewhere.example.com", user, password)
    write_docker_config({"credsStore": HELPER})
    assert source_of(basic_registry) is None
    assert not pushes(basic_registry)


def test_failing_helper_is_an_auth_error(
    basic_registry: RunningRegistry, cred_helper: CredentialHelper
) -> None:
    cred_helper.seed_failure(basic_registry.host)
    write_docker_config({"credHelpers": {basic_registry.host: HELPER}})
    with pytest.raises(ModelOpsError) as caught:
        api.push(SMOKE_BUNDLE, registry=basic_registry.host)
    assert caught.value.info.error_class is ErrorClass.REGISTRY_AUTH
    assert f"credential helper {HELPER!r} failed for {basic_registry.host} (exit 3)" in str(
        caught.value
    )


@pytest.mark.parametrize("setting", ["credHelpers", "credsStore"])
def test_helper_missing_from_path_names_the_binary(
    basic_registry: RunningRegistry, setting: str
) -> None:
    missing = f"modelopsmissing{secrets.token_hex(3)}"
    config = (
        {"credHelpers": {basic_registry.host: missing}}
        if setting == "credHelpers"
        else {"credsStore": missing}
    )
    write_docker_config(config)
    for attempt in (
        lambda: resolve_credentials(RegistryHost.parse(basic_registry.host)),
        lambda: api.push(SMOKE_BUNDLE, registry=basic_registry.host),
    ):
        with pytest.raises(ModelOpsError) as caught:
            attempt()
        info = caught.value.info
        assert info.error_class is ErrorClass.REGISTRY_AUTH
        assert f"docker-credential-{missing} is not on PATH" in info.message
        assert str(docker_config_path()) in info.message


def test_login_through_creds_store_wins_over_a_stale_auths_entry(
    basic_registry: RunningRegistry, cred_helper: CredentialHelper
) -> None:
    user, password = user_and_password(basic_registry)
    # An old plain-file login with a password that has since changed, then a credsStore.
    write_docker_config(
        {"credsStore": HELPER, "auths": {basic_registry.host: {"auth": b64(user, "old-pw")}}}
    )
    assert (
        api.login(Registry(basic_registry.host, user, password)) == f"credential helper {HELPER!r}"
    )
    assert cred_helper.stored()[basic_registry.host]["Secret"] == password
    assert source_of(basic_registry) == f"credential helper {HELPER!r}"
    assert pushes(basic_registry)


# --- login -------------------------------------------------------------------------------------


def test_login_stores_base64_in_docker_config_with_mode_600(
    basic_registry: RunningRegistry,
) -> None:
    user, password = user_and_password(basic_registry)
    path = write_docker_config(
        {"auths": {"other.example.com": {"auth": b64("a", "b")}}, "detachKeys": "ctrl-e,e"}
    )

    where = api.login(Registry(basic_registry.host, user, password))

    assert where == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = read_docker_config()
    auth = config["auths"][basic_registry.host]["auth"]
    assert base64.b64decode(auth).decode() == f"{user}:{password}"
    assert password not in path.read_text()  # base64 only
    # What was there before is kept.
    assert config["auths"]["other.example.com"] == {"auth": b64("a", "b")}
    assert config["detachKeys"] == "ctrl-e,e"

    assert pushes(basic_registry)  # no explicit credentials: picked up from config.json


def test_login_creates_the_docker_config(basic_registry: RunningRegistry) -> None:
    user, password = user_and_password(basic_registry)
    assert not docker_config_path().exists()
    api.login(Registry(f"http://{basic_registry.host}/", user, password))
    assert stat.S_IMODE(docker_config_path().stat().st_mode) == 0o600
    assert list(read_docker_config()["auths"]) == [basic_registry.host]
    assert pushes(basic_registry)


def test_login_to_a_token_registry(token_registry: RunningRegistry) -> None:
    user, password = user_and_password(token_registry)
    api.login(Registry(token_registry.host, user, password))
    assert pushes(token_registry)


def test_login_with_a_wrong_password_writes_nothing(basic_registry: RunningRegistry) -> None:
    user, _ = user_and_password(basic_registry)
    wrong = wrong_password()
    with pytest.raises(ModelOpsError) as caught:
        api.login(Registry(basic_registry.host, user, wrong))
    assert caught.value.info.error_class is ErrorClass.REGISTRY_AUTH
    assert wrong not in str(caught.value) + caught.value.info.traceback
    assert not docker_config_path().exists()

    path = write_docker_config({"auths": {"other.example.com": {"auth": b64("a", "b")}}})
    before = path.read_bytes()
    with pytest.raises(ModelOpsError) as again:
        api.login(Registry(basic_registry.host, user, wrong))
    assert again.value.info.error_class is ErrorClass.REGISTRY_AUTH
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]  # no temp files


def test_login_with_a_wrong_password_to_a_token_registry(token_registry: RunningRegistry) -> None:
    user, _ = user_and_password(token_registry)
    with pytest.raises(ModelOpsError) as caught:
        api.login(Registry(token_registry.host, user, wrong_password()))
    assert caught.value.info.error_class is ErrorClass.REGISTRY_AUTH
    assert "token service" in caught.value.info.message
    assert not docker_config_path().exists()


def test_login_goes_to_the_creds_store_helper(
    basic_registry: RunningRegistry, cred_helper: CredentialHelper
) -> None:
    user, password = user_and_password(basic_registry)
    path = write_docker_config({"credsStore": HELPER})
    before = path.read_bytes()

    where = api.login(Registry(basic_registry.host, user, password))

    assert where == f"credential helper {HELPER!r}"
    assert cred_helper.stored() == {basic_registry.host: {"Username": user, "Secret": password}}
    assert path.read_bytes() == before
    assert "auths" not in read_docker_config()
    assert pushes(basic_registry)  # read back through the helper


def test_login_goes_to_the_cred_helpers_helper(
    basic_registry: RunningRegistry, cred_helper: CredentialHelper
) -> None:
    user, password = user_and_password(basic_registry)
    path = write_docker_config({"credHelpers": {basic_registry.host: HELPER}})
    before = path.read_bytes()
    assert (
        api.login(Registry(basic_registry.host, user, password)) == f"credential helper {HELPER!r}"
    )
    assert cred_helper.stored()[basic_registry.host]["Secret"] == password
    assert path.read_bytes() == before
    assert pushes(basic_registry)


def test_login_then_push_with_cred_helpers_keyed_by_url(
    basic_registry: RunningRegistry, cred_helper: CredentialHelper
) -> None:
    user, password = user_and_password(basic_registry)
    write_docker_config({"credHelpers": {f"https://{basic_registry.host}": HELPER}})
    api.login(Registry(basic_registry.host, user, password))
    assert pushes(basic_registry)


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_login_then_push_and_pull(basic_registry: RunningRegistry, tmp_path: Path) -> None:
    user, password = user_and_password(basic_registry)
    host = basic_registry.host
    hidden = [password, b64(user, password)]

    login = mops(
        "bundle",
        "login",
        host,
        "-u",
        user,
        "--password-stdin",
        stdin=password + "\n",
        hidden=hidden,
    )
    assert login.returncode == 0, login.stderr
    said = " ".join(login.stderr.split())  # rich wraps this line at 80 columns in a pipe
    assert f"login succeeded; credentials stored in {docker_config_path()}" in said
    stored = read_docker_config()["auths"][host]["auth"]
    assert base64.b64decode(stored).decode() == f"{user}:{password}"  # no trailing newline

    push = mops(
        "bundle", "push", str(SMOKE_BUNDLE), "--registry", host, "--tag", "cli", hidden=hidden
    )
    assert push.returncode == 0, push.stderr
    assert REF_LINE.fullmatch(push.stdout.strip()), push.stdout
    ref = push.stdout.strip()

    # A fresh home, so the pull must fetch from the registry with the stored credentials.
    dest = tmp_path / "pulled"
    pull = mops(
        "bundle",
        "pull",
        "smoke-bundle:cli",
        "--dest",
        str(dest),
        "--registry",
        host,
        env={"MODELOPS_HOME": str(tmp_path / "home")},
        hidden=hidden,
    )
    assert pull.returncode == 0, pull.stderr
    assert pull.stdout.strip() == str(dest)
    assert f"pulled {ref} into {dest}" in pull.stderr
    for original in SMOKE_BUNDLE.iterdir():
        if original.is_file():
            assert (dest / original.name).read_bytes() == original.read_bytes()

    listed = mops("bundle", "list", env={"MODELOPS_BUNDLE_REGISTRY": host}, hidden=hidden)
    assert listed.returncode == 0, listed.stderr
    assert "smoke-bundle\t" in listed.stdout and "cli" in listed.stdout


def test_cli_push_with_password_stdin(basic_registry: RunningRegistry) -> None:
    user, password = user_and_password(basic_registry)
    done = mops(
        "bundle",
        "push",
        str(SMOKE_BUNDLE),
        "--registry",
        basic_registry.host,
        "-u",
        user,
        "--password-stdin",
        stdin=password + "\n",
        hidden=[password],
    )
    assert done.returncode == 0, done.stderr
    assert REF_LINE.fullmatch(done.stdout.strip()), done.stdout


@pytest.mark.parametrize("registry_kind", ["basic", "token"])
def test_cli_push_with_a_wrong_password_is_one_line(
    registry_kind: str, basic_registry: RunningRegistry, token_registry: RunningRegistry
) -> None:
    registry = basic_registry if registry_kind == "basic" else token_registry
    user, password = user_and_password(registry)
    wrong = wrong_password()
    done = mops(
        "bundle",
        "push",
        str(SMOKE_BUNDLE),
        "--registry",
        registry.host,
        "-u",
        user,
        "--password-stdin",
        stdin=wrong + "\n",
        hidden=[wrong, password],
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"registry_auth: authentication failed for {registry.host}")


def test_cli_login_with_a_wrong_password(basic_registry: RunningRegistry) -> None:
    user, password = user_and_password(basic_registry)
    wrong = wrong_password()
    done = mops(
        "bundle",
        "login",
        basic_registry.host,
        "-u",
        user,
        "--password-stdin",
        stdin=wrong + "\n",
        hidden=[wrong, password],
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"registry_auth: authentication failed for {basic_registry.host}")
    assert not docker_config_path().exists()


def test_cli_registry_with_a_repository_path_says_host_only(
    basic_registry: RunningRegistry,
) -> None:
    registry = basic_registry
    done = mops(
        "bundle", "list", env={"MODELOPS_BUNDLE_REGISTRY": f"{registry.host}/some/repo"}, hidden=[]
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bad_input: registry ")
    assert "host only" in lines[0]
    assert f"MODELOPS_BUNDLE_REGISTRY={registry.host}" in lines[0]


# --- secrets are never written -----------------------------------------------------------------


def test_passwords_never_reach_modelops_home_or_registry_storage(
    basic_registry: RunningRegistry,
    token_registry: RunningRegistry,
    modelops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    needles: list[bytes] = []
    for n, registry in enumerate((basic_registry, token_registry)):
        user, password = user_and_password(registry)
        needles += [password.encode(), b64(user, password).encode()]
        report = api.push(SMOKE_BUNDLE, registry=Registry(registry.host, user, password))
        api.pull(
            str(report.ref),
            dest=tmp_path / f"explicit-{n}",
            registry=Registry(registry.host, user, password),
        )
        api.inspect(str(report.ref), registry=Registry(registry.host, user, password))
        with monkeypatch.context() as env:
            env.setenv(USERNAME_ENV, user)
            env.setenv(PASSWORD_ENV, password)
            api.push(SMOKE_BUNDLE, registry=registry.host, tag="from-env")
            api.list_bundles(registry.host)
        api.login(Registry(registry.host, user, password))
        api.push(SMOKE_BUNDLE, registry=registry.host, tag="from-config")
        api.pull("smoke-bundle:from-config", dest=tmp_path / f"config-{n}", registry=registry.host)

    for root in (modelops_home, basic_registry.storage, token_registry.storage, tmp_path):
        assert files_containing(root, needles) == [], root

    # Only Docker's config.json holds them, and only base64-encoded.
    config_dir = docker_config_path().parent
    assert files_containing(config_dir, needles[0::2]) == []
    assert set(files_containing(config_dir, needles[1::2])) == {str(docker_config_path())}
