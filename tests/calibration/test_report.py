"""The calibration report: what it says, and a real browser that opens it offline.

The data are a made-up fit of a logistic epidemic curve: three free parameters (one on a
log scale, one an int), two targets (counts and a binomial positivity), forty trials with
some failed, and three replicates for each of the best three.

The browser tests drive headless Chromium over its DevTools pipe (stdlib only: JSON over
two file descriptors), so they see what a person opening the file would: every console
message with its level, uncaught exceptions, every URL the page asks for, whether bokeh
drew each plot, and a full-page screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import math
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import time
from dataclasses import dataclass, field, replace
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from modelops.calibration.report import ReportData, render_report, write_report
from modelops.calibration.search import TrialRecord
from modelops.calibration.spec import FreeParameter, Target

EVIL_REASON = "<script>alert('pwned')</script> worker lost"
DAYS = np.arange(0, 60, 2)
TRUE = {"r": 0.15, "K": 800.0, "delay": 3}
PARAMETERS = {
    "r": FreeParameter(type="float", low=0.01, high=1.0, log=True),
    "K": FreeParameter(type="float", low=100.0, high=2000.0, log=False),
    "delay": FreeParameter(type="int", low=0, high=10, log=False),
}
TARGETS = {
    "cases": Target(
        data="cases.csv", output="daily", join=["day"], observed="cases", loss="poisson"
    ),
    "positivity": Target(
        data="tests.csv",
        output="daily",
        join=["day"],
        observed="positive",
        simulated="p_positive",
        trials="tested",
        loss="binomial",
        weight=0.5,
    ),
}


def curve(params: dict[str, Any], days: np.ndarray = DAYS) -> np.ndarray:
    """Daily cases of a logistic epidemic."""
    t = days - 25 - params["delay"]
    return params["K"] * params["r"] / 4 / np.cosh(params["r"] * t / 2) ** 2


def positivity(cases: np.ndarray) -> np.ndarray:
    return 0.02 + 0.5 * cases / (cases + 40)


def observed_tables() -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(7)
    cases = rng.poisson(curve(TRUE))
    tested = np.full(len(DAYS), 200)
    positive = rng.binomial(tested, positivity(curve(TRUE)))
    return {
        "cases": pl.DataFrame({"day": DAYS, "cases": cases}),
        "positivity": pl.DataFrame({"day": DAYS, "positive": positive, "tested": tested}),
    }


def losses(params: dict[str, Any], observed: dict[str, pl.DataFrame]) -> dict[str, float]:
    """Per-target losses (mean squared errors, enough for a report)."""
    cases = curve(params)
    seen = observed["cases"]["cases"].to_numpy()
    tests = observed["positivity"]
    share = (tests["positive"] / tests["tested"]).to_numpy()
    return {
        "cases": float(np.mean((np.log1p(cases) - np.log1p(seen)) ** 2)),
        "positivity": float(np.mean((positivity(cases) - share) ** 2) * 100),
    }


def replicates(params: dict[str, Any], seed: int, count: int = 3) -> dict[str, list]:
    """Simulated tables per target for one trial, one per replicate, with noise."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[pl.DataFrame]] = {"cases": [], "positivity": []}
    for _ in range(count):
        cases = curve(params) * rng.lognormal(0, 0.15, len(DAYS))
        out["cases"].append(pl.DataFrame({"day": DAYS, "cases": cases}))
        p = np.clip(positivity(cases) + rng.normal(0, 0.01, len(DAYS)), 0, 1)
        out["positivity"].append(pl.DataFrame({"day": DAYS, "p_positive": p}))
    return out


def make_data(
    trials: int = 40,
    failures: dict[int, str | None] | None = None,
    running: int = 1,
    **changes: Any,
) -> ReportData:
    """A report of a search that drew its parameters at random (seeded)."""
    failures = (
        {5: EVIL_REASON, 11: "timeout after 600 s", 23: "timeout after 600 s", 31: None}
        if failures is None
        else failures
    )
    rng = np.random.default_rng(1)
    observed = observed_tables()
    weights = {name: target.weight for name, target in TARGETS.items()}
    records = []
    for number in range(trials):
        # the search homes in: later trials are drawn closer to the truth
        closeness = min(1.0, number / trials)
        params: dict[str, Any] = {
            "r": float(TRUE["r"] * math.exp(rng.normal(0, 1.5 * (1.1 - closeness)))),
            "K": float(np.clip(TRUE["K"] + rng.normal(0, 500 * (1.1 - closeness)), 100, 2000)),
            "delay": int(rng.integers(0, 11)),
            "population": 10_000,
        }
        params["r"] = min(max(params["r"], 0.01), 1.0)
        if number in failures:
            records.append(TrialRecord(number, params, "failed", None, failures[number]))
        elif number >= trials - running:
            records.append(TrialRecord(number, params, "running", None))
        else:
            per_target = losses(params, observed)
            score = sum(weights[t] * v for t, v in per_target.items())
            records.append(TrialRecord(number, params, "complete", score, targets=per_target))
    best = sorted((r for r in records if r.state == "complete"), key=lambda r: r.score)[:3]
    fields: dict[str, Any] = {
        "name": "logistic-fit",
        "job_id": "job-20250101-abc123",
        "state": "succeeded",
        "parameters": PARAMETERS,
        "fixed": {"population": 10_000, "seed_mode": "per-replicate"},
        "targets": TARGETS,
        "trials": records,
        "observed": observed,
        "fits": {r.number: replicates(r.params, r.number) for r in best},
        "utilisation": 0.87,
    }
    fields.update(changes)
    return ReportData(**fields)


@pytest.fixture(scope="module")
def data() -> ReportData:
    return make_data()


@pytest.fixture(scope="module")
def text(data: ReportData) -> str:
    """The report of `data` (rendering takes about a second: done once)."""
    return render_report(data)


def best_trial(data: ReportData) -> TrialRecord:
    return min((t for t in data.trials if t.state == "complete"), key=lambda t: t.score)


# ---- the HTML -----------------------------------------------------------------------------


class Page(HTMLParser):
    """The parts of a page the tests look at: ids, headings, table rows, attribute URLs."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.headings: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self._section = ""
        self._heading: list[str] | None = None
        self._cell: list[str] | None = None
        self._script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.add(tag)
        if "id" in values:
            self.ids.add(values["id"] or "")
        if tag == "section":
            self._section = values.get("id") or ""
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        if tag in ("h1", "h2", "h3"):
            self._heading = []
        elif tag == "tr":
            self.rows.setdefault(self._section, []).append([])
        elif tag in ("td", "th"):
            self._cell = []
        self._script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[self._section][-1].append("".join(self._cell).strip())
            self._cell = None
        self._script = False

    def handle_data(self, data: str) -> None:
        if self._script:
            return
        for sink in (self._heading, self._cell):
            if sink is not None:
                sink.append(data)


SECTIONS = [
    "summary",
    "loss-trace",
    "parameter-traces",
    "best-fits",
    "pair-plots",
    "best-trials",
    "failed-trials",
    "parameters",
]


def test_every_section_is_there_with_its_heading(text: str) -> None:
    page = Page(text)
    assert set(SECTIONS) <= page.ids
    for heading in [
        "Loss trace",
        "Parameter traces",
        "Best fits",
        "Pair plots of the top trials",
        "Best parameter sets",
        "Failed trials",
        "Parameters",
        "Target cases",
        "Target positivity",
    ]:
        assert heading in page.headings


def test_the_summary_names_the_job_and_the_best_result(data: ReportData, text: str) -> None:
    summary = text[text.index('<header id="summary"') : text.index("</header>")]
    best = best_trial(data)
    assert "logistic-fit" in summary and "job-20250101-abc123" in summary
    assert "40 (35 complete, 4 failed, 1 running)" in summary
    assert f"{best.score:.6g}</strong> (trial {best.number})" in summary
    assert f"r = {best.params['r']:.6g}" in summary
    assert "87%" in summary


def test_the_table_ranks_the_best_trials_with_their_target_losses(
    data: ReportData, text: str
) -> None:
    rows = Page(text).rows["best-trials"]
    header, first, *rest = rows
    assert header[:6] == ["rank", "trial", "loss", "r", "K", "delay"]
    assert header[6].startswith("cases loss") and header[7].startswith("positivity loss")
    best = best_trial(data)
    assert first[:3] == ["1", str(best.number), f"{best.score:.6g}"]
    assert first[5] == str(best.params["delay"])  # an int stays an int
    assert first[6] == f"{best.targets['cases']:.6g}"
    assert len(rest) == 9
    scores = [float(row[2]) for row in [first, *rest]]
    assert scores == sorted(scores)


def test_failures_are_grouped_by_reason_and_escaped(text: str) -> None:
    rows = Page(text).rows["failed-trials"]
    assert rows[0] == ["reason", "trials", "which"]
    assert rows[1] == ["timeout after 600 s", "2", "11, 23"]
    assert sorted(rows[2:]) == [[EVIL_REASON, "1", "5"], ["no reason recorded", "1", "31"]]
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; worker lost" in text


def test_the_plots_show_the_best_fits_and_the_top_trials(data: ReportData, text: str) -> None:
    ranked = sorted((t for t in data.trials if t.state == "complete"), key=lambda t: t.score)
    for trial in ranked[:3]:  # the trials with fits, titled with their loss, per target
        assert text.count(f"trial {trial.number}: loss {trial.score:.6g}") == 2
    assert f"trial {ranked[3].number}: loss" not in text
    assert "The best 10 of 35 complete trials" in text  # a quarter, but at least ten
    assert "3 trials shown, with 3 replicates each." in text


def test_the_parameters_show_bounds_scale_and_fixed_values(text: str) -> None:
    rows = Page(text).rows["parameters"]
    assert rows[1][:5] == ["r", "float", "0.01", "1", "log"]
    assert rows[3][:5] == ["delay", "int", "0", "10", "linear"]
    assert ["population", "10000"] in rows and ["seed_mode", "per-replicate"] in rows


EVIL_NAME = "</script><b>x</b> $$y^2$$"
"""A name that would end a script, add markup, or (as TeX) make bokeh fetch MathJax."""


def evil_names() -> ReportData:
    """The report's data with a parameter, a target and the job given EVIL_NAME."""

    def rename(names: dict[str, Any]) -> dict[str, Any]:
        return {EVIL_NAME if k in ("K", "cases") else k: v for k, v in names.items()}

    data = make_data()
    trials = [
        TrialRecord(
            t.number, rename(t.params), t.state, t.score, t.reason, targets=rename(t.targets)
        )
        for t in data.trials
    ]
    return replace(
        data,
        name=EVIL_NAME,
        job_id=EVIL_NAME,
        parameters=rename(PARAMETERS),
        targets=rename(TARGETS),
        trials=trials,
        observed=rename(data.observed),
        fits={n: rename(tables) for n, tables in data.fits.items()},
    )


def test_names_users_chose_are_escaped_everywhere() -> None:
    text = render_report(evil_names())
    assert "</script><b>" not in text and "<b>x</b>" not in text
    assert "&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in text
    page = Page(text)
    assert f"Target {EVIL_NAME}" in page.headings
    assert EVIL_NAME in page.rows["best-trials"][0][4]


def test_the_page_links_to_nothing_outside_itself(text: str) -> None:
    """No tag loads anything: bokeh's library is inline (the browser test below checks
    what a browser actually requests; bokeh's code holds URLs it never uses here)."""
    page = Page(text)
    assert page.urls and all(url.startswith("#") for url in page.urls)  # the contents links
    assert not page.tags & {"link", "iframe", "img", "object", "embed"}


NONE_COMPLETE = {"trials": 6, "failures": dict.fromkeys(range(6), "bad"), "running": 0}


@pytest.mark.parametrize(
    ("build", "changes"),
    [
        pytest.param({"trials": 0, "failures": {}, "running": 0}, {}, id="no-trials"),
        pytest.param(NONE_COMPLETE, {}, id="all-failed"),
        pytest.param({"trials": 3, "failures": {}, "running": 3}, {}, id="all-running"),
        pytest.param({"trials": 1, "failures": {}, "running": 0}, {}, id="one-trial"),
        pytest.param({}, {"fits": {}}, id="no-fits"),
        pytest.param({}, {"observed": {}}, id="no-observed"),
        pytest.param({}, {"observed": {}, "fits": {}}, id="nothing-to-fit"),
        pytest.param({}, {"utilisation": None, "fixed": {}, "state": "running"}, id="bare"),
    ],
)
def test_edge_cases_render(build: dict[str, Any], changes: dict[str, Any]) -> None:
    data = make_data(**build, **changes)
    text = render_report(data)
    assert set(SECTIONS) <= Page(text).ids
    if not any(t.state == "complete" for t in data.trials):
        assert "Best loss</dt><dd>no complete trial yet" in text
        assert "No complete trial yet" in text


def test_one_free_parameter_shows_loss_against_it(data: ReportData) -> None:
    text = render_report(replace(data, parameters={"r": PARAMETERS["r"]}))
    assert "the loss of every complete trial against it" in text


def with_target(data: ReportData, join: list[str], frame: pl.DataFrame) -> ReportData:
    """`data` with one target, observed `frame` (its column y), which the best trial's two
    replicates fit a little high."""
    target = Target(data="x.csv", output="o", join=join, observed="y", loss="squared")
    fit = [frame.with_columns(pl.col("y") + shift) for shift in (0.5, 1.0)]
    return replace(
        data,
        targets={"t": target},
        observed={"t": frame},
        fits={best_trial(data).number: {"t": fit}},
    )


REGIONS = pl.DataFrame({"day": [0, 1, 0, 1], "region": ["n", "n", "s", "s"], "y": [1.0, 2, 3, 4]})
DATES = pl.DataFrame({"date": pl.date_range(date(2024, 1, 1), date(2024, 1, 5), eager=True)})
DATES = DATES.with_columns(y=pl.Series([1.0, 3, 2, 5, 4]))
AGES = pl.DataFrame({"age": ["0-9", "10-19", "20+"], "y": [5.0, 3, 1]})


def test_a_target_joined_on_two_columns_is_split_into_groups(data: ReportData) -> None:
    best = best_trial(data)
    text = render_report(with_target(data, ["day", "region"], REGIONS))
    assert "one row per value of [&#x27;region&#x27;]" in text
    for region in ("n", "s"):
        assert f"region = {region}: trial {best.number}: loss" in text


@pytest.mark.parametrize(("join", "frame"), [(["date"], DATES), (["age"], AGES)])
def test_dates_and_categories_go_on_the_x_axis(
    data: ReportData, join: list[str], frame: pl.DataFrame
) -> None:
    text = render_report(with_target(data, join, frame))
    kind = "DatetimeAxis" if join == ["date"] else "CategoricalAxis"
    assert kind in text and "Target t" in Page(text).headings


def test_write_report_makes_the_directory(tmp_path: Path) -> None:
    out = write_report(make_data(), tmp_path / "deep" / "report.html")
    assert out == tmp_path / "deep" / "report.html"
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# ---- a real browser -----------------------------------------------------------------------


def chromium_binary() -> str:
    """Chromium, which CI installs (.ci/run); skipped without it, except in CI."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed, and CI must run the browser tests")
    pytest.skip("chromium is not installed")


PROBE = """(() => {
  const canvases = (root) => [...root.querySelectorAll('*')].reduce((n, el) =>
    n + (el.tagName === 'CANVAS' && el.width > 0) + (el.shadowRoot ? canvases(el.shadowRoot) : 0),
    0);
  const ids = [...document.querySelectorAll('[data-root-id]')].map(el => el.dataset.rootId);
  const views = window.Bokeh ? Bokeh.index.roots.filter(v => ids.includes(v.model.id)) : [];
  const drawn = views.filter(v => v.is_idle && v.el.getBoundingClientRect().height > 0);
  return JSON.stringify({
    placeholders: ids.length,
    views: views.length,
    drawn: drawn.length,
    canvases: canvases(document),
    height: document.documentElement.scrollHeight,
  });
})()"""
"""What bokeh drew: a root view per plot placeholder, idle once painted, and the canvases
(inside shadow roots) that hold the pixels."""


@dataclass
class Visit:
    """What the browser saw while it opened a page."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    probe: dict[str, int] = field(default_factory=dict)


class DevTools:
    """Headless Chromium driven over --remote-debugging-pipe: commands go in on its fd 3,
    replies and events come out on its fd 4, each a JSON message ended by a NUL byte."""

    def __init__(self, binary: str, profile: Path, timeout: float = 60) -> None:
        self.timeout = timeout
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()
        # keep the child's ends away from fds 3 and 4, which bash then moves them to
        child_in = fcntl.fcntl(to_browser, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_browser, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser)
        os.close(from_browser)
        flags = [
            "--headless",
            "--no-sandbox",  # as root in a container
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        move = f'exec "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-'
        self.process = subprocess.Popen(
            ["bash", "-c", move, "bash", binary, *flags],
            pass_fds=(child_in, child_out),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: we can end all it started
        )
        os.close(child_in)
        os.close(child_out)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        """Ask the browser to quit; kill its process group if it does not."""
        with contextlib.suppress(OSError, TimeoutError, EOFError, RuntimeError):
            self.call("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)
        for fd in (self._in, self._out):
            os.close(fd)

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(
        self, method: str, params: dict | None = None, session: str | None = None, timeout=None
    ) -> dict[str, Any]:
        """Send a command and wait for its reply (events read meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        number = self._next_id
        reply = self.wait_for(lambda m: m.get("id") == number, timeout or self.timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def wait_for(self, wanted, timeout: float) -> dict[str, Any]:
        """The first message (reply or event) `wanted` accepts; TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            readable, _, _ = select.select([self._in], [], [], left)
            if readable:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise EOFError("chromium closed its DevTools pipe")
                self._buffer += chunk

    def drain(self, seconds: float) -> None:
        """Keep reading events for a while (late errors, after the page settled)."""
        with contextlib.suppress(TimeoutError):
            self.wait_for(lambda _: False, seconds)

    def visit(self, page: Path, screenshot: Path, width: int = 1400, draw: float = 30) -> Visit:
        """Open `page`, wait (up to `draw` seconds) until bokeh drew every plot, and take a
        full-page screenshot."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attach = {"targetId": target, "flatten": True}
        session = self.call("Target.attachToTarget", attach)["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.call(f"{domain}.enable", session=session)
        metrics = {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", metrics, session)
        start = len(self.events)
        self.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
        self.wait_for(lambda m: m.get("method") == "Page.loadEventFired", self.timeout)
        probe = self._until_drawn(session, draw)
        self.drain(1.0)
        height = min(probe["height"], 16_000)
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        shot = self.call(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
            session,
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        self.call("Target.closeTarget", {"targetId": target})
        return _seen(self.events[start:], probe)

    def _until_drawn(self, session: str, timeout: float) -> dict[str, int]:
        """Poll the page until every plot placeholder has a painted bokeh view (or time out
        and return what there is: the test then says what was missing)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.call(
                "Runtime.evaluate", {"expression": PROBE, "returnByValue": True}, session
            )
            probe = json.loads(result["result"]["value"])
            done = probe["drawn"] == probe["placeholders"]
            if done or time.monotonic() > deadline:
                return probe
            self.drain(0.2)


def _seen(events: list[dict[str, Any]], probe: dict[str, int]) -> Visit:
    """Sort the page's events: errors (console errors, uncaught exceptions, failed loads,
    browser log errors), console warnings, and the URLs requested."""
    visit = Visit(probe=probe)
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            if params["type"] in ("error", "assert"):
                visit.errors.append(f"console.{params['type']}: {text}")
            elif params["type"] == "warning":
                visit.warnings.append(text)
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            description = details.get("exception", {}).get("description", details["text"])
            visit.errors.append(f"uncaught: {description}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            visit.errors.append(f"log: {params['entry']['text']}")
        elif method == "Network.requestWillBeSent":
            visit.requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            visit.errors.append(f"load failed: {params.get('errorText')}")
    return visit


def loaded(visit: Visit) -> list[str]:
    """The URLs a page asked for, less the data: URLs that hold bokeh's icons."""
    return [url for url in visit.requests if not url.startswith(("data:", "blob:"))]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def distinct_colors(path: Path) -> int:
    """How many colors the screenshot has (a blank or unstyled page has few)."""
    from PIL import Image  # Pillow comes with bokeh

    with Image.open(path) as image:
        colors = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return len(colors) if colors is not None else 1 << 20


@pytest.fixture
def browser(tmp_path: Path):
    with DevTools(chromium_binary(), tmp_path / "profile") as tools:
        yield tools


def test_chromium_opens_the_report_offline_and_draws_every_plot(
    tmp_path: Path, browser: DevTools
) -> None:
    report = write_report(make_data(), tmp_path / "report.html")
    shot = tmp_path / "report.png"
    visit = browser.visit(report, shot)
    assert visit.errors == []
    assert visit.warnings == []
    # the page itself and bokeh's inline icons, nothing else: no script, style, font, image
    assert loaded(visit) == [report.resolve().as_uri()]
    placeholders = len(re.findall(r"data-root-id=", report.read_text(encoding="utf-8")))
    assert placeholders == visit.probe["placeholders"] == 5
    assert visit.probe["drawn"] == visit.probe["views"] == placeholders
    assert visit.probe["canvases"] >= placeholders
    width, height = png_size(shot)
    assert width == 1400 and height > 3000
    assert distinct_colors(shot) > 500  # plots in color, not a blank page
    if os.environ.get("MODELOPS_REPORT_SCREENSHOT"):  # for a person to look at
        shutil.copy(shot, os.environ["MODELOPS_REPORT_SCREENSHOT"])


def test_chromium_opens_the_edge_cases_cleanly(tmp_path: Path, browser: DevTools) -> None:
    for name, data in {
        "evil-names": evil_names(),
        "none": make_data(trials=0, failures={}, running=0),
        "failed": make_data(trials=4, failures=dict.fromkeys(range(4), "x"), running=0),
        "one": make_data(trials=1, failures={}, running=0),
        "regions": with_target(make_data(), ["day", "region"], REGIONS),
        "dates": with_target(make_data(), ["date"], DATES),
        "ages": with_target(make_data(), ["age"], AGES),
    }.items():
        report = write_report(data, tmp_path / f"{name}.html")
        visit = browser.visit(report, tmp_path / f"{name}.png")
        assert visit.errors == [] and visit.warnings == [], name
        assert loaded(visit) == [report.resolve().as_uri()], name
        assert visit.probe["drawn"] == visit.probe["placeholders"], name


def test_the_browser_check_catches_errors_requests_and_undrawn_plots(
    tmp_path: Path, browser: DevTools
) -> None:
    """The checks above can fail: a page that logs an error, throws, asks the network for
    something, or never draws its plots is caught."""
    text = render_report(make_data())
    broken = text.replace(
        "</main>",
        '<img src="http://127.0.0.1:9/pixel.png">'  # port 9: refused at once
        '<script>console.error("boom"); console.warn("careful");'
        'setTimeout(() => { throw new Error("kaboom"); }, 50);</script></main>',
    )
    page = tmp_path / "broken.html"
    page.write_text(broken, encoding="utf-8")
    visit = browser.visit(page, tmp_path / "broken.png")
    assert "console.error: boom" in visit.errors
    assert any(e.startswith("uncaught: Error: kaboom") for e in visit.errors)
    assert "careful" in visit.warnings
    assert "http://127.0.0.1:9/pixel.png" in loaded(visit)

    # without the script that draws them, the placeholders stay empty
    embed = text.rindex("<script>", 0, text.rindex("</body>"))
    undrawn = tmp_path / "undrawn.html"
    undrawn.write_text(text[:embed] + "</body></html>", encoding="utf-8")
    visit = browser.visit(undrawn, tmp_path / "undrawn.png", draw=3)
    assert visit.probe["placeholders"] == 5
    assert visit.probe["drawn"] == visit.probe["canvases"] == 0
