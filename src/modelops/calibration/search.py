"""Ask/tell search over Optuna: candidates out, scores in, the history durable in a journal.

The calibration loop asks for candidates, runs their simulations on the cluster and tells
each score as it arrives, so many candidates are in flight at once (TPE lies about running
trials with a constant liar, so a batch asked together is spread out, not one point n times).

A search lives in one file, Optuna's append-only journal (one JSON line per change), and is
owned by one process at a time: a calibration job's run lock says which. The journal costs
the client a seventh of the CPU per trial of Optuna's SQLite storage (3 ms against 22 ms
measured), which on a small machine is CPU the simulations would otherwise have. A line cut
short by a kill is dropped when the file is reopened. Reopening the file
continues the search: told trials are kept; a trial that was asked but never told (the
process died) is marked failed and its parameters are queued to be asked first, as a new
trial that records `retry_of`, so the work is neither lost silently nor counted twice, and
simulations of it that already finished are found again in the provenance cache.

The seed makes a search reproducible when candidates are asked and told one at a time. A
reopened sampler draws from a stream derived from the seed and the number of trials already
stored, so it does not replay the draws made before the stop; Sobol keeps its seed, since its
position in the sequence is stored with the study.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import BaseSampler, CmaEsSampler, QMCSampler, RandomSampler, TPESampler
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from modelops.calibration.spec import FreeParameter
from modelops.contracts.errors import ErrorClass, ModelOpsError

STUDY_NAME = "search"
JOURNAL_TAIL = 2**20  # bytes read back to find where a cut last line starts
"""The one Optuna study in a search's journal."""
SPACE_ATTR = "modelops_search"
"""Study attribute holding what was searched, so a reopened file is checked against it."""
FAILURE_ATTR = "failure"
"""Trial attribute holding why a failed candidate failed."""
RETRY_ATTR = "retry_of"
TARGETS_ATTR = "targets"
"""Trial attribute holding a complete candidate's score per target."""
"""Trial attribute naming the abandoned trial whose parameters this trial asks again."""
ABANDONED = "abandoned: asked but never told before the search stopped"

State = Literal["running", "complete", "failed"]
_STATES: dict[TrialState, State] = {
    TrialState.RUNNING: "running",
    TrialState.COMPLETE: "complete",
    TrialState.FAIL: "failed",
}


def distribution(name: str, parameter: FreeParameter) -> BaseDistribution:
    """Optuna's form of a free parameter, whose bounds the calibration file has checked (a
    float on a linear scale unless it says otherwise)."""
    if parameter.low is None or parameter.high is None:
        raise _bad(f"parameter {name!r}: needs both bounds, low and high")
    log = bool(parameter.log)
    if parameter.type == "int":
        return IntDistribution(int(parameter.low), int(parameter.high), log=log)
    return FloatDistribution(float(parameter.low), float(parameter.high), log=log)


@dataclass(frozen=True)
class Candidate:
    """A parameter set to simulate: the trial it belongs to and every parameter, fixed ones too."""

    number: int
    params: dict[str, Any]


@dataclass(frozen=True)
class TrialRecord:
    """One asked trial as the report shows it."""

    number: int
    params: dict[str, Any]
    state: State
    score: float | None
    reason: str | None = None
    retry_of: int | None = None
    targets: dict[str, float] = field(default_factory=dict)
    """Each target's score (unweighted), for a complete trial."""


SamplerFactory = Callable[[int, int], BaseSampler]
"""Makes a sampler from the search seed and the number of trials already stored."""


def _stream_seed(seed: int, start: int) -> int:
    """A sampler seed for a search that already holds `start` trials (0 when new)."""
    return int(np.random.SeedSequence([seed, start]).generate_state(1)[0])


def _tpe(seed: int, start: int) -> BaseSampler:
    return TPESampler(seed=_stream_seed(seed, start), constant_liar=True)


def _cmaes(seed: int, start: int) -> BaseSampler:
    # optuna imports `cmaes` only at the first CMA-ES step: fail before any trial instead
    if importlib.util.find_spec("cmaes") is None:
        raise _bad("search algorithm 'cmaes' needs the Python package 'cmaes', not installed")
    return CmaEsSampler(seed=_stream_seed(seed, start))


def _random(seed: int, start: int) -> BaseSampler:
    return RandomSampler(seed=_stream_seed(seed, start))


def _sobol(seed: int, start: int) -> BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return QMCSampler(
            qmc_type="sobol",
            scramble=True,
            seed=seed,
            # the first trial, which fixes the search space, is drawn at random
            independent_sampler=RandomSampler(seed=_stream_seed(seed, start)),
            warn_independent_sampling=False,
        )


SAMPLERS: dict[str, SamplerFactory] = {
    "tpe": _tpe,
    "cmaes": _cmaes,
    "random": _random,
    "sobol": _sobol,
}
"""Search algorithms by the name a calibration file uses."""


class Search:
    """A minimising ask/tell search kept in one journal file; reopening it resumes."""

    def __init__(
        self,
        storage: Path,
        free: Mapping[str, FreeParameter],
        fixed: Mapping[str, Any] | None = None,
        *,
        algorithm: str = "tpe",
        seed: int = 0,
    ) -> None:
        fixed = dict(fixed or {})
        if algorithm not in SAMPLERS:
            raise _bad(f"unknown search algorithm {algorithm!r}; known: {', '.join(SAMPLERS)}")
        if not free:
            raise _bad("a search needs at least one free parameter")
        if both := sorted(set(free) & set(fixed)):
            raise _bad(f"parameters both free and fixed: {', '.join(both)}")
        self._distributions = {name: distribution(name, p) for name, p in free.items()}
        self._fixed = fixed
        self._in_flight: dict[int, optuna.Trial] = {}

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage.parent.mkdir(parents=True, exist_ok=True)
        _drop_cut_line(storage)
        self._study = optuna.create_study(
            storage=_journal(storage),
            study_name=STUDY_NAME,
            direction="minimize",
            load_if_exists=True,
        )
        # the sampler's stream depends on how many trials the file holds, known once it is open
        started = len(self._study.get_trials(deepcopy=False))
        self._study.sampler = SAMPLERS[algorithm](seed, started)
        space = {
            "free": {name: p.model_dump() for name, p in free.items()},
            "fixed": fixed,
            "algorithm": algorithm,
            "seed": seed,
        }
        self._check_same_search(storage, space)
        self._abandon_untold()

    def ask(self, n: int = 1) -> list[Candidate]:
        """`n` new candidates; others may still be in flight."""
        candidates = []
        for _ in range(n):
            trial = self._study.ask(self._distributions)
            self._in_flight[trial.number] = trial
            candidates.append(Candidate(trial.number, {**trial.params, **self._fixed}))
        return candidates

    def tell(
        self, candidate: Candidate, score: float, targets: Mapping[str, float] | None = None
    ) -> None:
        """Record a candidate's score (and each target's, for the report); a score that is
        not finite counts as a failure."""
        if not math.isfinite(score):
            self.tell_failed(candidate, f"score is not finite ({score})")
            return
        trial = self._take(candidate)
        if targets:
            trial.set_user_attr(TARGETS_ATTR, dict(targets))
        self._study.tell(trial, score)

    def tell_failed(self, candidate: Candidate, reason: str) -> None:
        """Record that a candidate could not be scored; the search goes on without it."""
        trial = self._take(candidate)
        trial.set_user_attr(FAILURE_ATTR, reason)
        self._study.tell(trial, state=TrialState.FAIL)

    def best(self) -> tuple[Candidate, float] | None:
        """The lowest-scoring told candidate and its score; None before any score."""
        try:
            trial = self._study.best_trial
        except ValueError:
            return None
        return Candidate(trial.number, {**trial.params, **self._fixed}), float(trial.value)

    def trials(self) -> list[TrialRecord]:
        """Every asked trial in order, for the report."""
        states = tuple(_STATES)
        found = self._study.get_trials(deepcopy=False, states=states)
        return [_record(trial, self._fixed) for trial in found]

    def _take(self, candidate: Candidate) -> optuna.Trial:
        try:
            return self._in_flight.pop(candidate.number)
        except KeyError:
            raise _bad(
                f"trial {candidate.number} is not in flight in this search (told already?)"
            ) from None

    def _check_same_search(self, storage: Path, space: dict[str, Any]) -> None:
        """Refuse to continue a stored search over other parameters, algorithm or seed."""
        stored = self._study.user_attrs.get(SPACE_ATTR)
        # JSON both ways, so the stored and the given forms compare alike (tuples, ints, floats)
        given = json.loads(json.dumps(space, default=str))
        if stored is None:
            self._study.set_user_attr(SPACE_ATTR, given)
            return
        changed = [key for key in given if given[key] != stored.get(key)]
        if changed:
            raise _bad(
                f"{storage} holds a search with other {', '.join(changed)};"
                " continue it with the same settings or start a new one"
            )

    def _abandon_untold(self) -> None:
        """Fail the trials a stopped process never told, and queue their parameters again."""
        trials = self._study.get_trials(deepcopy=False)
        retried = {t.user_attrs[RETRY_ATTR] for t in trials if RETRY_ATTR in t.user_attrs}
        for trial in trials:
            if trial.state != TrialState.RUNNING:
                continue
            # a trial stopped before all its parameters were drawn was never handed out
            handed_out = trial.params.keys() == self._distributions.keys()
            if handed_out and trial.number not in retried:
                self._study.enqueue_trial(trial.params, user_attrs={RETRY_ATTR: trial.number})
            self._study.tell(trial.number, state=TrialState.FAIL)


class _OwnerLock:
    """No file lock: one process owns a search (a calibration job's run lock sees to it), and
    readers only read. Optuna's own lock file would outlive a SIGKILLed owner and hold up
    the resume for its 30 s grace period. (The backend only calls acquire and release.)"""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


def _journal(path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path), lock_obj=_OwnerLock()))  # type: ignore[arg-type]


def _drop_cut_line(path: Path) -> None:
    """Cut a last line a killed owner left half written, which the next line appended to it
    would turn into a broken line in the middle of the journal."""
    if not path.exists():
        return
    with path.open("r+b") as journal:
        size = journal.seek(0, os.SEEK_END)
        if size == 0:
            return
        journal.seek(max(0, size - JOURNAL_TAIL))
        tail = journal.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        if cut < 0 and size > JOURNAL_TAIL:
            raise _bad(f"{path} ends in a line longer than {JOURNAL_TAIL} bytes; not a journal")
        journal.truncate(size - len(tail) + cut + 1)


def read_trials(storage: Path) -> list[TrialRecord]:
    """Every asked trial of the search stored at `storage`, read without taking it over: a
    search another process is running keeps its trials in flight."""
    if not storage.exists():
        return []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:  # the owner's last line may be half written: the journal stops before it
        study = optuna.load_study(study_name=STUDY_NAME, storage=_journal(storage))
    except (KeyError, ValueError):  # not created yet
        return []
    fixed = study.user_attrs.get(SPACE_ATTR, {}).get("fixed", {})
    found = study.get_trials(deepcopy=False, states=tuple(_STATES))
    return [_record(trial, fixed) for trial in found]


def _record(trial: FrozenTrial, fixed: Mapping[str, Any]) -> TrialRecord:
    state = _STATES[trial.state]
    return TrialRecord(
        number=trial.number,
        params={**trial.params, **fixed},
        state=state,
        score=trial.value if state == "complete" else None,
        reason=trial.user_attrs.get(FAILURE_ATTR, ABANDONED) if state == "failed" else None,
        retry_of=trial.user_attrs.get(RETRY_ATTR),
        targets=dict(trial.user_attrs.get(TARGETS_ATTR, {})) if state == "complete" else {},
    )


def _bad(message: str) -> ModelOpsError:
    return ModelOpsError(ErrorClass.BAD_INPUT, message)
