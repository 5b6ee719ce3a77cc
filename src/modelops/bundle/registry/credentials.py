"""Where registry credentials come from, in order: the command line, `MODELOPS_REGISTRY_*`,
Docker's config.json (the host's `credHelpers` entry, then `credsStore`, then `auths`, as
Docker itself reads it), else anonymous.

Docker's file and helper protocol are used as they are, so `docker login`, `az acr login`
and `mops bundle login` all serve each other. That includes the identity token `az acr login`
stores (`auths[host].identitytoken`, or a helper entry whose username is `<token>`): an OAuth2
refresh token the token flow trades for access tokens (auth.py), as Docker does. Passwords
and identity tokens never appear in a repr, an error or a log line.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelops.bundle.registry.host import RegistryHost
from modelops.contracts import ErrorClass, ModelOpsError

USERNAME_ENV = "MODELOPS_REGISTRY_USERNAME"
PASSWORD_ENV = "MODELOPS_REGISTRY_PASSWORD"
# The user name ACR gives its tokens: `az acr login` writes it beside an identity token, and
# `az acr login --expose-token` says to log in with it and the token as the password.
TOKEN_USERNAME = "00000000-0000-0000-0000-000000000000"
# The user name a Docker credential helper stores an identity token under.
_HELPER_TOKEN_USERNAME = "<token>"


@dataclass(frozen=True)
class Credentials:
    """A username and password; or an identity token, which the token flow uses in place of
    the password (Docker's rule: it wins when both are there)."""

    username: str
    password: str = field(repr=False)
    source: str = "command line"  # where they came from, for messages
    identity_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, source={self.source!r})"

    def __reduce__(self) -> Any:
        raise TypeError(
            "Credentials never leave their process (no pickling into a task graph or a job "
            "record); a worker resolves its own from its environment"
        )


def docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def resolve_credentials(
    host: RegistryHost, username: str | None = None, password: str | None = None
) -> Credentials | None:
    if username and password is None:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"a username for {host} was given without a password; pass --password-stdin "
            "and the password on standard input",
        )
    if username and password is not None:
        return Credentials(username, password, "command line")
    env_user, env_password = os.environ.get(USERNAME_ENV), os.environ.get(PASSWORD_ENV)
    if env_user and env_password is None:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT, f"{USERNAME_ENV} is set but {PASSWORD_ENV} is not; set both"
        )
    if env_user and env_password is not None:
        return Credentials(env_user, env_password, f"{USERNAME_ENV}/{PASSWORD_ENV}")
    return _from_docker_config(host)


def _read_docker_config() -> dict:
    """Docker's config.json, its shape checked as far as credentials are read from it: a
    value of the wrong kind is named (file and key), never shown, and never skipped."""
    path = docker_config_path()
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except ValueError as exc:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT, f"{path} is not valid JSON ({exc}); fix or remove it"
        ) from None
    if not isinstance(config, dict):
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"{path} holds a JSON {_kind(config)}, not an object; fix or remove it",
        )
    for section in ("auths", "credHelpers"):
        value = config.get(section) or {}
        if not isinstance(value, dict):
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"{path}: {section!r} is a JSON {_kind(value)}, not an object; fix or remove it",
            )
        for key, entry in value.items():
            expected = dict if section == "auths" else str
            if entry is not None and not isinstance(entry, expected):
                raise ModelOpsError(
                    ErrorClass.BAD_INPUT,
                    f"{path}: {section}[{key!r}] is a JSON {_kind(entry)}, not "
                    f"{'an object' if expected is dict else 'a string'}; fix or remove it",
                )
    if not isinstance(config.get("credsStore") or "", str):
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"{path}: 'credsStore' is a JSON {_kind(config['credsStore'])}, not a string",
        )
    return config


def _kind(value: object) -> str:
    """The JSON name of a value's type, for messages that must not show the value."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _keys_for(host: RegistryHost) -> list[str]:
    """Docker files key registries by host, sometimes with a scheme: try the usual forms."""
    return [host.address, f"https://{host.address}", f"http://{host.address}"]


def _helper_for(config: dict, host: RegistryHost) -> tuple[str, str] | None:
    """(helper, server key) that holds this host's credentials, if a helper does."""
    for key in _keys_for(host):
        helper = (config.get("credHelpers") or {}).get(key)
        if helper:
            return helper, key
    if config.get("credsStore"):
        return config["credsStore"], host.address
    return None


def _from_docker_config(host: RegistryHost) -> Credentials | None:
    config = _read_docker_config()
    helper = _helper_for(config, host)
    if helper is not None:
        found = _from_helper(*helper)
        if found is not None:
            return found
    for key in _keys_for(host):
        entry = (config.get("auths") or {}).get(key)
        if entry:
            found = _from_auth_entry(entry, key)
            if found:
                return found
    return None


def _from_auth_entry(entry: dict, key: str) -> Credentials | None:
    """Credentials of one `auths` entry: a user and password, an identity token, or both."""
    source = f"{docker_config_path()} (auths[{key!r}])"
    identity_token = entry.get("identitytoken") or ""
    if not isinstance(identity_token, str):
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"{source}: 'identitytoken' is a JSON {_kind(identity_token)}, not a string; "
            "log in again or fix the entry",
        )
    pair = _user_and_password(entry, source)
    if pair is None and not identity_token:
        return None
    username, password = pair or ("", "")
    return Credentials(username, password, source, identity_token=identity_token)


def _user_and_password(entry: dict, source: str) -> tuple[str, str] | None:
    """An entry's `auth`, else its `username` and `password`. Docker reads `auth` strictly
    (standard base64 of `user:password`) and so does this: anything else is an error naming
    the file and the entry, never the value, and never quietly empty credentials."""
    if entry.get("auth"):
        problem = _auth_problem(entry["auth"])
        if problem:
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"{source}: the 'auth' value is not base64 of user:password ({problem}); "
                "log in again (`mops bundle login`) or fix the entry",
            )
        username, _, password = _decode_auth(entry["auth"]).decode().partition(":")
        return username, password
    username, password = entry.get("username"), entry.get("password")
    if username and password is not None:
        if not isinstance(username, str) or not isinstance(password, str):
            raise ModelOpsError(
                ErrorClass.BAD_INPUT, f"{source}: 'username' and 'password' must be strings"
            )
        return username, password
    return None


def _auth_problem(value: object) -> str:
    """What is wrong with an `auth` value, in words that do not repeat it; "" if nothing."""
    if not isinstance(value, str):
        return f"a JSON {_kind(value)}, not a string"
    try:
        decoded = _decode_auth(value)
    except ValueError:
        return "not valid base64"
    try:
        text = decoded.decode()
    except UnicodeDecodeError:
        return "it decodes to bytes that are not UTF-8"
    if ":" not in text:
        return "no ':' between user and password"
    return ""


def _decode_auth(value: str) -> bytes:
    """Standard base64, strictly, line breaks ignored: as Docker (Go's StdEncoding) reads it."""
    return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)


def _helper_binary(helper: str) -> str:
    name = f"docker-credential-{helper}"
    binary = shutil.which(name)
    if binary is None:
        raise ModelOpsError(
            ErrorClass.REGISTRY_AUTH,
            f"{docker_config_path()} names the credential helper {helper!r}, but {name} is not "
            "on PATH; install it or remove it from the file",
        )
    return binary


def _from_helper(helper: str, server: str) -> Credentials | None:
    done = subprocess.run(
        [_helper_binary(helper), "get"], input=server, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        if "credentials not found" in (done.stdout + done.stderr).lower():
            return None
        raise ModelOpsError(
            ErrorClass.REGISTRY_AUTH,
            f"credential helper {helper!r} failed for {server} (exit {done.returncode})",
        )
    source = f"credential helper {helper!r}"
    try:
        answer = json.loads(done.stdout)
        username, secret = answer["Username"], answer["Secret"]
    except (ValueError, KeyError) as exc:
        raise ModelOpsError(
            ErrorClass.REGISTRY_AUTH, f"credential helper {helper!r} gave an unreadable answer"
        ) from exc
    if username == _HELPER_TOKEN_USERNAME:  # how Docker stores an identity token in a helper
        return Credentials(username, "", source, identity_token=secret)
    return Credentials(username, secret, source)


def store_credentials(host: RegistryHost, credentials: Credentials) -> str:
    """Save credentials the Docker way: through the configured helper if there is one, else
    base64 in config.json (mode 0600). Returns where they went."""
    config = _read_docker_config()
    found = _helper_for(config, host)
    if found is not None:
        helper, server = found
        payload = json.dumps(
            {
                "ServerURL": server,
                "Username": credentials.username,
                "Secret": credentials.password,
            }
        )
        done = subprocess.run(
            [_helper_binary(helper), "store"],
            input=payload,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ModelOpsError(
                ErrorClass.REGISTRY_AUTH,
                f"credential helper {helper!r} could not store credentials for {host}",
            )
        return f"credential helper {helper!r}"
    token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    config["auths"] = config.get("auths") or {}
    config["auths"][host.address] = {"auth": token}
    path = docker_config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    with os.fdopen(fd, "w") as out:
        json.dump(config, out, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return str(path)
