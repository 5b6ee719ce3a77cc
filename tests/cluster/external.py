"""External clusters for tests: `dask scheduler` and `dask worker` started with the real CLI as
separate OS processes, and stopped when the test ends, however it ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 120
DASK = str(Path(sys.executable).parent / "dask")  # the CLI installed beside this Python
PRELOAD = "modelops.cluster.preload"  # the workers' command line in images and deployments


def _start(args: list[str], log: Path, env: Mapping[str, str] = {}) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )


def _stop(process: subprocess.Popen) -> None:
    """Stops the process and everything in its session (a worker's nanny and its worker)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _scheduler_address(scheduler_file: Path, scheduler: subprocess.Popen, log: Path) -> str:
    """The address the scheduler writes to its file once it listens (the file may be seen
    before it is complete: read until it parses)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            assert scheduler.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)


@dataclass(frozen=True)
class TlsFiles:
    """A CA and one certificate signed by it, used by scheduler, workers and client alike."""

    ca: Path
    cert: Path
    key: Path

    def dask_args(self) -> list[str]:
        return [
            *("--tls-ca-file", str(self.ca)),
            *("--tls-cert", str(self.cert)),
            *("--tls-key", str(self.key)),
        ]

    def security(self) -> object:
        from distributed.security import Security

        return Security(
            tls_ca_file=str(self.ca),
            tls_client_cert=str(self.cert),
            tls_client_key=str(self.key),
            require_encryption=True,
        )


def make_tls_files(folder: Path) -> TlsFiles:
    """A fresh CA and a certificate for 127.0.0.1 and localhost, for server and client use."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("modelops test CA"))
        .issuer_name(name("modelops test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(folder / "ca.pem", folder / "node.pem", folder / "node-key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(pem(key))
    return files


@dataclass
class ExternalCluster:
    address: str
    scheduler: subprocess.Popen
    workers: subprocess.Popen  # one `dask worker` command: a nanny and a worker per --nworkers
    log: Path  # the workers' log

    def close_workers_gracefully(self) -> None:
        """SIGTERM to the `dask worker` command alone, as an orchestrator stops a pod: its
        nannies close their workers (plugins, extensions, preloads torn down)."""
        self.workers.send_signal(signal.SIGTERM)
        self.workers.wait(timeout=60)


@contextmanager
def external_cluster(
    folder: Path,
    n_workers: int = 2,
    preload: bool = False,
    worker_env: Mapping[str, str] | None = None,
    tls: TlsFiles | None = None,
) -> Iterator[ExternalCluster]:
    """A scheduler and `n_workers` single-thread workers started with the real `dask` CLI,
    the workers with `--preload modelops.cluster.preload` when `preload`, `worker_env` added
    to the workers' environment, and every connection TLS with `tls`; yields once every
    worker has joined (so a preload has run)."""
    from distributed import Client

    tls_args = tls.dask_args() if tls else []
    scheduler_file = folder / "scheduler.json"
    processes: list[subprocess.Popen] = []
    try:
        processes.append(
            _start(
                [
                    DASK,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(scheduler_file),
                    *(["--protocol", "tls", *tls_args] if tls else []),
                ],
                folder / "scheduler.log",
            )
        )
        address = _scheduler_address(scheduler_file, processes[0], folder / "scheduler.log")
        log = folder / "workers.log"
        processes.append(
            _start(
                [
                    DASK,
                    "worker",
                    *(["--preload", PRELOAD] if preload else []),
                    address,
                    "--nworkers",
                    str(n_workers),
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--death-timeout",
                    str(START_TIMEOUT_S),
                    *tls_args,
                ],
                log,
                worker_env or {},
            )
        )
        security = tls.security() if tls else None
        with Client(address, timeout=START_TIMEOUT_S, security=security) as probe:
            probe.wait_for_workers(n_workers, timeout=START_TIMEOUT_S)
        yield ExternalCluster(address, processes[0], processes[1], log)
    finally:
        for process in reversed(processes):
            _stop(process)
