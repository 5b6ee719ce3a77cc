"""One way to get a Dask client with the ModelOps plugin, whatever the cluster: an embedded
LocalCluster by default, any running scheduler by address (`tls://` with Dask's TLS
security), workers started as Slurm jobs, or a Dask cluster on Kubernetes. The client's own
code is the same for all of them."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import dask.config
from distributed import Client, LocalCluster
from distributed.security import Security

from modelops.cluster.plugin import PLUGIN_NAME, ModelOpsWorkerPlugin
from modelops.contracts import ErrorClass, ModelOpsError
from modelops.settings import CLUSTER_KINDS, Settings

# Worker processes take seconds to start on a busy 2-core machine; the earlier system's
# 5 s death timeout made its fixtures hang. Be generous.
CONNECT_TIMEOUT_S = 120
# The embedded cluster's dashboard starts loading this long into a run: one over sooner has
# nothing to watch, and importing bokeh (0.4 s of CPU) would compete with its children
# starting on the same cores.
DASHBOARD_AFTER_S = 1.0
logger = logging.getLogger(__name__)
EMBEDDED_CONFIG = {
    # in-process workers talk `inproc://`, whose address names the machine's IP: the link
    # must name the loopback address the dashboard listens on
    "distributed.dashboard.link": "{scheme}://127.0.0.1:{port}/status",
    # each worker keeps its last N stimuli for debugging, a compute-task one with its whole
    # batch of SimTasks: 1,000 of them held a 200,000-simulation study's tasks in the
    # client's process (decision 69)
    "distributed.admin.low-level-log-length": 50,
}


@dataclass
class Dashboard:
    """Where Dask's dashboard serves, once it does: a running scheduler's at once, the
    embedded cluster's once loaded in the background, from DASHBOARD_AFTER_S into the run
    (importing bokeh takes 0.4 s, which no study should wait for and a short one never
    needs)."""

    link: str | None = None


@contextmanager
def open_cluster(
    scheduler: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    kind: str | None = None,
    dashboard: Dashboard | None = None,
) -> Iterator[Client]:
    """A client whose workers all have ModelOps loaded; closes what it started. With a
    `dashboard`, its `link` is set once Dask's dashboard serves.

    The kind of cluster is `kind`, else `scheduler` when an address is given, else the
    `cluster.kind` setting, else the embedded one. The plugin is registered on every
    connect, so workers without the preload get it, and so do workers that join later; a
    worker that already has a runner (from the preload or an earlier client) keeps it with
    its warm children (see `plugin`)."""
    settings = Settings.from_env()
    kind = cluster_kind(scheduler, kind, settings)
    with ExitStack() as stack:
        if kind == "scheduler":
            assert scheduler is not None  # cluster_kind said so
            security = _security(scheduler, settings)
            client = stack.enter_context(
                Client(scheduler, timeout=CONNECT_TIMEOUT_S, security=security)
            )
        elif kind == "slurm":
            from modelops.cluster.slurm import slurm_cluster

            cluster = stack.enter_context(slurm_cluster(settings, n_workers or 1))
            client = stack.enter_context(Client(cluster, timeout=CONNECT_TIMEOUT_S))
        elif kind == "kubernetes":
            from modelops.cluster.kubernetes import kubernetes_cluster

            cluster = stack.enter_context(kubernetes_cluster(settings, n_workers or 1))
            client = stack.enter_context(Client(cluster, timeout=CONNECT_TIMEOUT_S))
        else:
            stack.enter_context(dask.config.set(EMBEDDED_CONFIG))
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n_workers or os.cpu_count() or 1,
                    threads_per_worker=threads_per_worker,
                    # Thread workers in this process (decision 69): the warm child is the
                    # isolation boundary, not the worker; no Dask memory limit, since the
                    # process is the client's and children have ModelOps' own limits.
                    processes=False,
                    memory_limit=0,
                    dashboard_address=None,
                    # The scheduler's web server on a free loopback port, so two embedded
                    # clusters never fight over 8787; the dashboard joins it later
                    # (`_serve_dashboard`), when asked for.
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.ERROR,
                    death_timeout=CONNECT_TIMEOUT_S,
                )
            )
            client = stack.enter_context(Client(cluster, timeout=CONNECT_TIMEOUT_S))
            if dashboard is not None:
                loading = _serve_dashboard(cluster, client.dashboard_link, dashboard)
                stack.callback(loading.cancel)  # a run over before it starts never loads it
        if dashboard is not None and kind != "embedded":
            dashboard.link = client.dashboard_link  # the running scheduler serves its own
        client.register_plugin(ModelOpsWorkerPlugin(), name=PLUGIN_NAME)
        yield client


def _serve_dashboard(cluster: LocalCluster, link: str, dashboard: Dashboard) -> threading.Timer:
    """Load Dask's dashboard in a thread DASHBOARD_AFTER_S from now, add it to the embedded
    scheduler's web server on the scheduler's own event loop (as Dask does when it starts
    one with a dashboard), then give its link. If it cannot load (bokeh missing, or a
    version Dask refuses), there is no link: better none than one that answers 404. The
    caller cancels the returned timer when the cluster closes."""

    def add() -> None:
        from distributed.dashboard import scheduler as bokeh_dashboard

        scheduler = cluster.scheduler
        try:
            bokeh_dashboard.connect(scheduler.http_application, scheduler.http_server, scheduler)
        except Exception:  # a cluster closing meanwhile: no dashboard to show
            logger.debug("the dashboard could not be added", exc_info=True)
            return
        dashboard.link = link

    def load() -> None:
        try:
            import distributed.dashboard.scheduler  # noqa: F401  (0.4 s: bokeh)
        except ImportError:
            return
        with contextlib.suppress(RuntimeError):  # the cluster's loop closed meanwhile
            cluster.loop.add_callback(add)

    loading = threading.Timer(DASHBOARD_AFTER_S, load)
    loading.name, loading.daemon = "modelops-dashboard", True
    loading.start()
    return loading


def cluster_kind(scheduler: str | None, kind: str | None, settings: Settings) -> str:
    """The kind of cluster these arguments and settings ask for, checked (a known kind, an
    address for a scheduler, certificates for a `tls://` one) before any bundle is built or
    job recorded, so a mistake costs nothing."""
    kind = kind or ("scheduler" if scheduler else settings.cluster or "embedded")
    if kind not in CLUSTER_KINDS:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"no cluster kind {kind!r}; the kinds are {', '.join(CLUSTER_KINDS)}",
        )
    if kind == "scheduler":
        if not scheduler:
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                "the cluster kind 'scheduler' needs an address: pass --scheduler "
                "tcp://HOST:8786, or set [cluster] scheduler in modelops.toml",
            )
        _security(scheduler, settings)
    return kind


def _security(scheduler: str, settings: Settings) -> Security | None:
    """Dask's TLS security for a `tls://` scheduler, from the `tls` settings; without them,
    Dask's own configuration (`distributed.comm.tls.*`) decides, and with neither the
    problem is said here rather than as an SSL error from deep inside Dask."""
    if not scheduler.startswith("tls://"):
        return None
    files = {"ca": settings.tls_ca, "cert": settings.tls_cert, "key": settings.tls_key}
    given = [name for name, path in files.items() if path is not None]
    if not given:
        if dask.config.get("distributed.comm.tls.ca-file", None):
            return None
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"{scheduler} is a TLS scheduler but no certificates are set: set [tls] ca, cert "
            "and key in modelops.toml, or MODELOPS_TLS_CA, MODELOPS_TLS_CERT and "
            "MODELOPS_TLS_KEY",
        )
    missing = [name for name in files if name not in given]
    if missing:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"TLS needs a CA, a certificate and a key; tls.{', tls.'.join(missing)} is not set",
        )
    for name, path in files.items():
        if not path.is_file():  # type: ignore[union-attr]
            raise ModelOpsError(ErrorClass.BAD_INPUT, f"tls.{name}: no file {path}")
    return Security(
        tls_ca_file=str(settings.tls_ca),
        tls_client_cert=str(settings.tls_cert),
        tls_client_key=str(settings.tls_key),
        require_encryption=True,
    )
