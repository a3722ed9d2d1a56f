"""Algorithm 1 (simulated annealing over label sets) with ConsistencyFix, as a resumable state machine.

Two modes:
- `fast` (default; `batched` is its old name): the paper's algorithm with the recommended choices
  (docs/engine.md: random K seeds, T = T0 / (1 + beta * ln n), every consistent
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
from typing import Any

from ..anchor import has_likelihood_fields, likelihood_anchor
from ..backends.base import Backend, BackendStats
from ..consistency import ConsistencyRule
from ..examples import Example
from ..orientation import agreement, orient
from ..presets import Task
from ..scoring import ScoreCache, Scorer, centred, energy, offsets, spread
from ..util import rng_state, set_rng_state
from .completion import conflicted, mirrored, settle
from .config import ICMConfig, make_batches
from .events import ICMResult, SearchEvent
from .semantics import SEMANTICS_BY_NAME
from .state import CHECKPOINT_VERSION, SearchState, fingerprint


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
        *,
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
        self.anchor = self.config.effective_anchor
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
                             demo_order=self.config.demo_order, folds=self.config.folds)
        self.group_keys = [self.examples[u].group for u in uids]
        local = {u: p for p, u in enumerate(uids)}
        self.scorer.rank = {local[u]: r for r, u in enumerate(u for u in self.state.labeled_order if u in local)}

    def _local(self) -> list[bool | None]:
        return [self.state.labels[u] for u in self.uids]

    def _local_scores(self) -> list[float | None]:
        return [self.state.scores[u] for u in self.uids]

    def evaluate(self, labels: list[bool | None]) -> tuple[float, list[float | None], int]:
        """Full U evaluation of the current batch's labels: every labeled example re-scored with all others
        in context. Returns U, the scores and the number of conflicts."""
        c = self.config
        # Calibrated within groups, every example is scored (unlabeled ones too): a group's mean needs all its
        # members, and an unlabeled example's proposal is then its stored score.
        every = c.calibrate and c.centre == "group" and not self.reference
        targets = list(range(len(labels))) if every else [p for p, y in enumerate(labels) if y is not None]
        values = self.scorer.loo(labels, targets)
        scores: list[float | None] = [None] * len(labels)
        for p, v in zip(targets, values, strict=True):
            scores[p] = float(v)
        conflicts = self.rule.count(labels)
        U = energy(labels, self._calibrated(labels, scores), alpha=c.alpha, conflicts=conflicts, prior=self._prior(),
                   prior_weight=1.0, scale=self.state.scale)
        return U, scores, conflicts

    def _prior(self) -> list[float] | None:
        """The anchor's term for each example in the scores' units (weight and agreement factor included), or
        None while it is not part of U. Normalized, the anchor is first put in its own spread, so the weight
        says how much it counts beside the readout."""
        c, factor = self.config, self.state.anchor_factor
        if not (c.anchor_weight and factor):
            return None
        values = self._batch_anchor()
        unit = self.state.scale / spread(values) if c.effective_normalize else 1.0
        return [c.anchor_weight * factor * v * unit for v in values]

    def _calibrated(self, labels: list[bool | None], scores: list[float | None]) -> list[float | None]:
        if not self.config.calibrate:
            return list(scores)
        return centred(labels, scores, self.group_keys, self.config.centre)

    def _emit(self, kind: str, accepted: bool | None = None, changed: list | None = None) -> None:
        if self.on_event is None:
            return
        st, s = self.stats(), self.state
        self.on_event(SearchEvent(
            kind=kind, batch=s.batch_index, batches=len(self.batches), iteration=s.iteration,
            iterations=self.config.iterations, temperature=self.temperature(), score=s.U,
            labeled=sum(y is not None for y in s.labels), size=len(self.examples), accepted=accepted,
            accepted_total=s.accepted, rejected_total=s.rejected,
            conflicts=self.rule.count(self._local()), stats=st, elapsed_s=self.elapsed(),
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
        if self.anchor == "likelihood":
            self.state.anchor_factor = 1.0
            if k:
                # The model's own zero-shot preference between the claims of a group labels the seeds.
                anchor = self._batch_anchor()
                values = _higher_half([anchor[p] for p in positions])
        labels: list[bool | None] = [None] * n
        for p, y in zip(positions, values, strict=True):
            labels[p] = y
        if self.config.effective_normalize:
            # The unit of P: how far the readout's log-odds spread over the batch given the seed labels.
            self.state.scale = spread(self._calibrated(labels, [float(v) for v in self.scorer.loo(labels, range(n))]))
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

    def _check_anchor(self) -> None:
        """A third of the way through a batch (anchor "agreeing"): the anchor's weight in U becomes its agreement
        with the labels the search found by then, on the readout alone (rank-biserial r, signed; for examples
        not labeled yet, the labels their scores propose). So it helps find the partition as far as it knows
        something about it and counts for little where it does not; which class is True is left to the
        orientation. Measured once: measured again, the labels it has moved would raise its own weight."""
        s = self.state
        if not self.config.anchor_weight or not has_likelihood_fields(self.task, [self.examples[u] for u in self.uids]):
            return
        labels = self._local()
        proposed = [y if y is not None else (v > 0 if v is not None else None)
                    for y, v in zip(labels, self._calibrated(labels, self._local_scores()), strict=True)]
        s.anchor_factor = agreement(self._batch_anchor(), proposed).r
        s.U = self.evaluate(labels)[0]

    def _step(self) -> None:
        c, s = self.config, self.state
        if self.anchor == "agreeing" and s.iteration == c.iterations // 3:
            self._check_anchor()
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
        if scores[pos] is not None and not self.reference:
            proposal_score = scores[pos]  # the same prompt as its leave-one-out score under D
        else:
            proposal_score = float(self.scorer.loo(labels, [pos])[0])
            scores = list(scores)
            scores[pos] = proposal_score
        evidence = proposal_score - (offsets(labels, scores, self.group_keys, c.centre)[pos] if c.calibrate else 0.0)
        prior = self._prior()
        # The label that raises U most for this example: the readout's, plus the anchor's term where it counts.
        proposal = evidence + (prior[pos] if prior else 0.0) > 0
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
        """The batch's labels as handed back: conflicts the search kept are settled and the examples it never
        labeled get the model's prediction with the searched labels as context (config.complete), all within
        the consistency rule (completion.py); scores are calibrated; then a label-free signal names the two
        classes (orientation.py). Every score stays the log-odds its label was chosen by."""
        s, c = self.state, self.config
        labels = self._local()
        todo = [p for p, y in enumerate(labels) if y is None]
        if todo and (c.complete or any(y is not None for y in labels)):
            for p, v in zip(todo, self.scorer.loo(labels, todo), strict=True):
                s.scores[self.uids[p]] = float(v)
        # Calibrated scores, so a score's sign is the label ICM would propose.
        scores = self._calibrated(labels, self._local_scores())
        changed: dict[Any, bool | None] = {}
        if c.complete:
            open_ = set(todo) | conflicted(self.rule, labels)
            final = settle(self.rule, labels, scores, open_)
            for p, u in enumerate(self.uids):
                if labels[p] is None:
                    s.completed.append(u)
                elif final[p] != labels[p]:
                    s.settled.append(u)
                if final[p] != labels[p]:
                    changed[self.examples[u].id] = final[p]
            labels = final
        where = orient(self.task, self.backend, [self.examples[u] for u in self.uids], labels, c.orient,
                       folds=c.folds, likelihood=self._batch_anchor)
        if where.flipped:
            labels, scores = mirrored(self.rule, labels, scores, settle_after=c.complete)
            s.flipped_batches.append(s.batch_index)
            changed.update((self.examples[u].id, labels[p]) for p, u in enumerate(self.uids) if labels[p] is not None)
        s.orientation.append({"batch": s.batch_index, **where.as_dict()})
        for p, u in enumerate(self.uids):
            s.labels[u], s.scores[u] = labels[p], scores[p]
        self._emit("batch_done", changed=list(changed.items()))
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
            cache_hits=self.cache.hits, flipped_batches=list(s.flipped_batches), completed=len(s.completed),
            anchor=self.anchor,
            settled=len(s.settled), orientation=list(s.orientation),
        )
