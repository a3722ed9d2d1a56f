"""Algorithm 1 (simulated annealing over label sets) with ConsistencyFix, as a resumable state machine.

Two modes:
- `fast` (default; `batched` is its old name): the paper's algorithm with the recommended choices of
  ../shared/icm-algorithm.md §1.4 (random K seeds, T = T0 / (1 + beta * ln n), every consistent
  option of a conflicting pair, strict improvement, best over a scan, stop when a scan finds none);
  all prompts of one U evaluation go to the backend in one call, scores are cached by content, a
  proposal that changes nothing is not scored, and the backend resumes each prompt from the longest
  prefix it computed before (the transformers backend's prefix store; prefix caching in vLLM).
- `reference`: the official code's semantics and cost (first K positions seeded, the code's
  temperature schedule by accepted flips, two repair options per pair type, first pair with U >= best,
  a dummy metric after a proposal, a full re-score after every fix, every prompt its own call).

`semantics` chooses the search's choices apart from the cost (semantics.py): `fast` with
`semantics="code"` is the official algorithm on the fast scorer (what `icm bench` compares with
`reference` by default).

The search never sees gold labels: it takes `Example`s, which do not carry them.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..anchor import agreement, likelihood_anchor
from ..backends.base import Backend, BackendStats
from ..consistency import ConsistencyRule
from ..examples import Example
from ..presets import Task
from ..scoring import ScoreCache, Scorer, centre, energy
from ..util import rng_state, set_rng_state
from .config import ICMConfig, make_batches
from .semantics import SEMANTICS_BY_NAME
from .state import CHECKPOINT_VERSION, SearchState, fingerprint


@dataclass
class SearchEvent:
    """One step of the search, for progress bars and live pages."""

    kind: str  # init | iteration | batch_done | done
    batch: int
    batches: int
    iteration: int
    iterations: int
    temperature: float
    score: float
    labeled: int
    size: int
    accepted: bool | None
    accepted_total: int
    rejected_total: int
    conflicts: int
    model_calls: int
    prompts: int
    prompt_tokens: int
    computed_tokens: int
    elapsed_s: float
    changed: list[tuple[Any, bool | None]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ICMResult:
    labels: list[bool | None]
    scores: list[float | None]
    stats: BackendStats
    wall_s: float
    complete: bool
    iterations: int
    accepted: int
    rejected: int
    cache_hits: int = 0
    flipped_batches: list[int] = field(default_factory=list)


def accept_probability(delta: float, temperature: float) -> float:
    """Metropolis acceptance: 1 for an improvement, else exp(delta / T), without overflow."""
    if delta > 0:
        return 1.0
    x = delta / temperature
    return 0.0 if x < -700 else math.exp(x)


def _higher_half(scores: Sequence[float]) -> list[bool]:
    """The paper's balanced initial labels, with the higher-scored half True (ties: the earlier one)."""
    ranked = sorted(range(len(scores)), key=lambda r: (-scores[r], r))
    values = [False] * len(scores)
    for r in ranked[: len(scores) // 2]:
        values[r] = True
    return values


class ICMSearch:
    """Runs ICM over all batches; `checkpoint()` returns a plain dict from which `resume` continues exactly."""

    def __init__(
        self,
        examples: Sequence[Example],
        task: Task,
        backend: Backend,
        config: ICMConfig | None = None,
        on_event: Callable[[SearchEvent], None] | None = None,
        checkpoint: dict[str, Any] | None = None,
        batch_range: tuple[int, int] | None = None,
    ):
        self.examples = list(examples)
        if [ex.uid for ex in self.examples] != list(range(len(self.examples))):
            raise ValueError("example uids must be their positions 0..n-1")
        self.task = task
        self.backend = backend
        self.config = (config or ICMConfig()).validate()
        self.on_event = on_event
        self.reference = self.config.mode == "reference"  # the official code's cost
        self.semantics = SEMANTICS_BY_NAME[self.config.effective_semantics]  # the paper's or the code's choices
        self.batches = make_batches(self.examples, self.config.batch_size)
        # A shard of a larger run searches only batches [lo, hi). Batches are independent (each has its
        # own seeded stream), so shards run anywhere and in any order give the labels of one whole run.
        lo, hi = batch_range if batch_range is not None else (0, len(self.batches))
        if not 0 <= lo < hi <= len(self.batches):
            raise ValueError(f"batch range [{lo}, {hi}) is outside the {len(self.batches)} batches")
        self.batch_range = (lo, hi)
        self.fingerprint = fingerprint(self.examples, task)
        self.state = SearchState.start(len(self.examples), lo)
        self.cache = ScoreCache(self.config.cache_size)
        self.rule: ConsistencyRule | None = None  # the current batch's (set up by setup_batch)
        self.rng = random.Random()
        self.stats_base = BackendStats()
        self.elapsed_base = 0.0
        self._stats_origin = backend.stats.copy()
        self._t0 = time.monotonic()
        if checkpoint is not None:
            self._restore(checkpoint)

    # -- checkpoint --------------------------------------------------------------------------------
    def stats(self) -> BackendStats:
        return self.stats_base.plus(self.backend.stats.minus(self._stats_origin))

    def elapsed(self) -> float:
        return self.elapsed_base + time.monotonic() - self._t0

    def checkpoint(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint,
            "config": self.config.as_dict(),
            "batch_range": list(self.batch_range),
            **self.state.as_dict(),
            "rng": rng_state(self.rng),
            "cache": self.cache.state(),
            "stats": self.stats().as_dict(),
            "elapsed_s": self.elapsed(),
        }

    def _restore(self, ck: dict[str, Any]) -> None:
        if ck.get("version") != CHECKPOINT_VERSION:
            raise ValueError("checkpoint version not supported")
        if ck["fingerprint"] != self.fingerprint:
            raise ValueError("checkpoint belongs to other examples or another task")
        # Checkpoints older than a hyperparameter hold no value for it: the default applies.
        if ICMConfig.from_dict(ck["config"]).as_dict() != self.config.as_dict():
            raise ValueError("checkpoint was made with other hyperparameters")
        if list(ck.get("batch_range", [0, len(self.batches)])) != list(self.batch_range):
            raise ValueError("checkpoint belongs to another range of batches")
        self.state = SearchState.from_checkpoint(ck, len(self.examples))
        set_rng_state(self.rng, ck["rng"])
        self.cache = ScoreCache(self.config.cache_size, ck["cache"])
        self.stats_base = BackendStats.from_dict(ck["stats"])
        self.elapsed_base = ck["elapsed_s"]

    # -- helpers -------------------------------------------------------------------------------------
    def temperature(self) -> float:
        c, st = self.config, self.state
        schedule = c.effective_schedule
        if schedule == "code":
            t = c.initial_temperature / (1 + 2 * math.log(1 + st.flips_in_batch))
        elif schedule == "exp":
            t = c.initial_temperature * c.cooling ** st.flips_in_batch
        else:
            t = c.initial_temperature / (1 + c.cooling * math.log(max(st.iteration, 1)))
        return max(c.final_temperature, t)

    def setup_batch(self, index: int | None = None) -> None:
        uids = self.batches[self.state.batch_index if index is None else index]
        self.uids = uids
        self.rule = ConsistencyRule([self.examples[u] for u in uids], self.task.consistency)
        self.scorer = Scorer(self.task, self.backend, [self.examples[u] for u in uids],
                             readout=self.config.readout, reference=self.reference, floor=self.semantics.floor,
                             cache=self.cache,
                             context_policy=self.config.context, context_cap=self.config.context_cap,
                             demo_order=self.config.demo_order)
        local = {u: p for p, u in enumerate(uids)}
        self.scorer.rank = {local[u]: r for r, u in enumerate(u for u in self.state.labeled_order if u in local)}

    def _local(self) -> list[bool | None]:
        return [self.state.labels[u] for u in self.uids]

    def _local_scores(self) -> list[float | None]:
        return [self.state.scores[u] for u in self.uids]

    def evaluate(self, labels: list[bool | None]) -> tuple[float, list[float | None], int]:
        """Full U evaluation of the current batch's labels: every labeled example re-scored with all others
        in context. Returns U, the scores and the number of conflicts."""
        targets = [p for p, y in enumerate(labels) if y is not None]
        values = self.scorer.loo(labels, targets)
        scores: list[float | None] = [None] * len(labels)
        for p, v in zip(targets, values, strict=True):
            scores[p] = float(v)
        conflicts = self.rule.count(labels)
        c = self.config
        prior = self._batch_anchor() if c.anchor_weight else None
        U = energy(c.alpha, labels, scores, conflicts, c.calibrate, prior=prior, prior_weight=c.anchor_weight)
        return U, scores, conflicts

    def _emit(self, kind: str, accepted: bool | None = None, changed: list | None = None) -> None:
        if self.on_event is None:
            return
        st, s = self.stats(), self.state
        self.on_event(SearchEvent(
            kind=kind, batch=s.batch_index, batches=len(self.batches), iteration=s.iteration,
            iterations=self.config.iterations, temperature=self.temperature(), score=s.U,
            labeled=sum(y is not None for y in s.labels), size=len(self.examples), accepted=accepted,
            accepted_total=s.accepted, rejected_total=s.rejected,
            conflicts=self.rule.count(self._local()), model_calls=st.model_calls, prompts=st.prompts,
            prompt_tokens=st.prompt_tokens, computed_tokens=st.computed_tokens, elapsed_s=self.elapsed(),
            changed=changed or [],
        ))

    # -- the algorithm ---------------------------------------------------------------------------------
    def init_batch(self) -> None:
        n = len(self.uids)
        k = min(self.config.num_seed, n)
        positions = self.semantics.seed_positions(self.rng, n, k)
        values = [True] * (k // 2) + [False] * (k - k // 2)
        self.rng.shuffle(values)
        if self.config.init == "zero-shot" and k:
            # Same balance, but the half the model scores higher zero-shot is labeled True: anchors the
            # polarity that a readout symmetric under a global label flip cannot anchor by itself.
            values = _higher_half(self.scorer.score([([], p) for p in positions]))
        if self.config.anchor == "likelihood" and k:
            # The model's own zero-shot preference between the claims of a group names the classes.
            anchor = self._batch_anchor()
            values = _higher_half([anchor[p] for p in positions])
        labels: list[bool | None] = [None] * n
        for p, y in zip(positions, values, strict=True):
            labels[p] = y
        U, scores, conflicts = self.evaluate(labels)
        if conflicts:
            labels, U, scores = self.semantics.repair_seeds(self, labels, U, scores)
        self._store(labels, scores)
        self.state.U = U
        self.state.initialized = True
        self._emit("init")

    def _batch_anchor(self) -> list[float]:
        anchor = self.state.anchor
        if any(anchor[u] is None for u in self.uids):
            values = likelihood_anchor(self.task, self.backend, [self.examples[u] for u in self.uids])
            for u, v in zip(self.uids, values, strict=True):
                anchor[u] = v
        return [float(anchor[u]) for u in self.uids]

    def _orient(self) -> list[tuple[Any, bool | None]]:
        """Flip the batch's labels (and scores) when they disagree with the anchor overall.

        A label set and its mirror image are equally consistent, and nearly equally predictable under a
        symmetric readout; the anchor decides which of the two is meant. Only the naming of the two
        classes changes: the search's partition stays as found.
        """
        s = self.state
        if agreement(self._local(), self._batch_anchor()) >= 0:
            return []
        changed = []
        for u in self.uids:
            if s.labels[u] is not None:
                s.labels[u] = not s.labels[u]
                changed.append((self.examples[u].id, s.labels[u]))
            if s.scores[u] is not None:
                s.scores[u] = -s.scores[u]
        s.flipped_batches.append(s.batch_index)
        return changed

    def _store(self, labels, scores) -> list[tuple[Any, bool | None]]:
        s = self.state
        changed = []
        for p, u in enumerate(self.uids):
            if s.labels[u] is None and labels[p] is not None:
                self.scorer.rank[p] = len(self.scorer.rank)
                s.labeled_order.append(u)
            if s.labels[u] != labels[p]:
                changed.append((self.examples[u].id, labels[p]))
            s.labels[u] = labels[p]
            s.scores[u] = scores[p]
        return changed

    def _step(self) -> None:
        c, s = self.config, self.state
        s.iteration += 1
        s.total_iterations += 1
        T = self.temperature()
        labels = self._local()
        scores = self._local_scores()
        n = len(labels)
        # Boost unlabeled examples whose group already has a labeled member (paper: "by a factor of 100").
        labeled_groups = {self.rule.group_of[p] for p in range(n) if labels[p] is not None}
        weights = [c.boost if labels[p] is None and self.rule.group_of[p] in labeled_groups else 1.0
                   for p in range(n)]
        pos = self.rng.choices(range(n), weights=weights)[0]
        if labels[pos] is not None and scores[pos] is not None and not self.reference:
            proposal_score = scores[pos]  # the same prompt as its leave-one-out score under D
        else:
            proposal_score = float(self.scorer.loo(labels, [pos])[0])
        threshold = centre(labels, scores) if c.calibrate else 0.0
        proposal = proposal_score > threshold
        if labels[pos] == proposal:
            self._emit("iteration", accepted=None)
            return
        new = list(labels)
        new[pos] = proposal
        new, new_u, new_scores = self.semantics.repair_proposal(self, new)
        delta = new_u - s.U
        draw = self.rng.random()
        accept = draw < accept_probability(delta, T) or delta > 0
        changed: list = []
        if accept:
            changed = self._store(new, new_scores)
            s.U = new_u
            s.accepted += 1
            s.flips_in_batch += 1
        else:
            s.rejected += 1
        self._emit("iteration", accepted=accept, changed=changed)

    def _finish_batch(self) -> None:
        """Score examples the search never labeled, given the final labeled set (labels stay None)."""
        s = self.state
        labels = self._local()
        todo = [p for p, y in enumerate(labels) if y is None]
        if todo and any(y is not None for y in labels):
            for p, v in zip(todo, self.scorer.loo(labels, todo), strict=True):
                s.scores[self.uids[p]] = float(v)
        if self.config.calibrate:
            # Report calibrated scores, so their sign is the label ICM would propose.
            offset = centre(labels, self._local_scores())
            for u in self.uids:
                if s.scores[u] is not None:
                    s.scores[u] -= offset
        changed = self._orient() if self.config.anchor == "likelihood" else []
        self._emit("batch_done", changed=changed)
        s.next_batch()

    def run(self, should_stop: Callable[[], bool] | None = None) -> ICMResult:
        """Run (or continue) until every batch is done or `should_stop()` says stop."""
        # Fold what earlier runs of this object cost into the base, so a second run() keeps counting.
        self.stats_base, self.elapsed_base = self.stats(), self.elapsed()
        self._t0 = time.monotonic()
        self._stats_origin = self.backend.stats.copy()
        s = self.state
        stopped = False
        while s.batch_index < self.batch_range[1]:
            self.setup_batch()
            if not s.initialized:
                # Each batch draws from its own seeded stream, so batches do not depend on each other.
                self.rng.seed(f"{self.config.seed}:{s.batch_index}")
                self.init_batch()
            while s.iteration < self.config.iterations:
                if should_stop is not None and should_stop():
                    stopped = True
                    break
                self._step()
            if stopped:
                break
            self._finish_batch()
        if not stopped:
            if self.rule is None and self.batch_range[1] > self.batch_range[0]:
                # Resumed from a checkpoint taken after the last batch: the final event describes that
                # batch, as an uninterrupted run's does.
                self.setup_batch(self.batch_range[1] - 1)
            self._emit("done")
        return ICMResult(
            labels=list(s.labels), scores=list(s.scores), stats=self.stats(), wall_s=self.elapsed(),
            complete=not stopped, iterations=s.total_iterations, accepted=s.accepted, rejected=s.rejected,
            cache_hits=self.cache.hits, flipped_batches=list(s.flipped_batches),
        )
