"""Algorithm 1 (simulated annealing over label sets) and ConsistencyFix, as a resumable state machine.

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

`semantics` chooses the search's choices apart from the cost: `fast` with `semantics="code"` is the
official algorithm on the fast scorer (what `icm bench` compares with `reference` by default).

The search never sees gold labels: it takes `Example`s, which do not carry them.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .anchor import ANCHORS, agreement, likelihood_anchor
from .backends.base import Backend, BackendStats
from .consistency import Conflict, ConsistencyRule
from .examples import Example
from .scoring import CONTEXTS, DEMO_ORDERS, READOUTS, ScoreCache, Scorer, centre, energy
from .tasks import Task
from .util import rng_state, set_rng_state

MODES = ("fast", "reference")
MODE_ALIASES = {"batched": "fast"}
SCHEDULES = ("paper", "code", "exp")
SEMANTICS = ("paper", "code")
INITS = ("random", "zero-shot")
CHECKPOINT_VERSION = 1


@dataclass
class ICMConfig:
    """Hyperparameters; defaults are the paper's (App. A.1) and the official code's batch size."""

    alpha: float = 50.0
    initial_temperature: float = 10.0
    final_temperature: float = 0.01
    cooling: float = 0.99
    schedule: str | None = None  # paper | code | exp; None = the semantics' own (paper: paper, code: code)
    # The search's choices: paper (§1.4's recommendations) | code (the official code's: first K seeded, its
    # ConsistencyFix, its schedule, log-probs floored at 1e-5); None = the mode's own (fast: paper,
    # reference: code). `fast` with `code` is the official algorithm on the fast scorer.
    semantics: str | None = None
    num_seed: int = 8
    iterations: int = 3000
    fix_steps: int = 10
    boost: float = 100.0
    batch_size: int = 256
    mode: str = "fast"
    readout: str = "verdict"
    context: str = "all"
    calibrate: bool = False
    context_cap: int | None = None  # an approximation: at most this many demonstrations per target
    init: str = "random"  # random (the paper) | zero-shot: the K seeds' balanced labels follow zero-shot scores
    # none (the paper) | likelihood: the K seeds' labels follow the claim-likelihood anchor, and a batch whose
    # final labels disagree with the anchor overall is flipped (see anchor.py)
    anchor: str = "none"
    # With the anchor: U gains alpha * anchor_weight * (mean over labeled examples of the anchor's value signed
    # by the label), the same form and units (nats) as P. 0 (default): the anchor only seeds and names.
    anchor_weight: float = 0.0
    # position (the official code) | labeled: demonstrations in the order examples were first labeled
    demo_order: str = "position"
    seed: int = 0
    cache_size: int = 20000

    def validate(self) -> ICMConfig:
        problems = []
        self.mode = MODE_ALIASES.get(self.mode, self.mode)
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}")
        if self.semantics is not None and self.semantics not in SEMANTICS:
            problems.append(f"semantics must be one of {', '.join(SEMANTICS)}")
        elif self.semantics == "paper" and self.mode == "reference":
            problems.append("reference mode is the official code's semantics")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}")
        if not self.alpha > 0:
            problems.append("alpha must be positive")
        if not 0 < self.final_temperature <= self.initial_temperature:
            problems.append("temperatures must satisfy 0 < final <= initial")
        if not self.cooling > 0:
            problems.append("cooling must be positive")
        if self.num_seed < 0 or self.iterations < 0 or self.fix_steps < 0:
            problems.append("num_seed, iterations and fix_steps must be >= 0")
        if self.boost < 1:
            problems.append("boost must be >= 1")
        if self.init not in INITS:
            problems.append(f"init must be one of {', '.join(INITS)}")
        if self.anchor not in ANCHORS:
            problems.append(f"anchor must be one of {', '.join(ANCHORS)}")
        elif self.anchor != "none" and self.init != "random":
            problems.append("anchor likelihood labels the K seeds itself: leave init random")
        if not (math.isfinite(self.anchor_weight) and self.anchor_weight >= 0):
            problems.append("anchor_weight must be a finite number >= 0")
        elif self.anchor_weight and self.anchor != "likelihood":
            problems.append("anchor_weight weighs the likelihood anchor: set anchor likelihood")
        if self.demo_order not in DEMO_ORDERS:
            problems.append(f"demo_order must be one of {', '.join(DEMO_ORDERS)}")
        elif self.demo_order != "position" and self.mode == "reference":
            problems.append("reference mode keeps the official code's demonstration order (position)")
        if self.context not in CONTEXTS:
            problems.append(f"context must be one of {', '.join(CONTEXTS)}")
        if self.readout not in READOUTS:
            problems.append(f"readout must be one of {', '.join(READOUTS)}")
        if self.batch_size < 2:
            problems.append("batch_size must be >= 2")
        if self.context_cap is not None and (not isinstance(self.context_cap, int) or self.context_cap < 1):
            problems.append("context_cap must be a positive integer (or absent)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def effective_schedule(self) -> str:
        return self.schedule or self.effective_semantics

    @property
    def effective_semantics(self) -> str:
        return self.semantics or ("code" if self.mode == "reference" else "paper")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ICMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown hyperparameters: {', '.join(sorted(unknown))}")
        return cls(**data).validate()


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


# The paper's batch and iterations (3,000 over a batch of 256: about 12 proposals per example).
PAPER_BATCH_SIZE = 256
PAPER_ITERATIONS = 3000
ITERATIONS_PER_EXAMPLE = 12


def sized_to(n_examples: int) -> dict[str, int]:
    """The batch size and iterations for `n_examples`: the paper's batch of 256 (all of them when fewer) and
    its 12 proposals per example of a batch, at most its 3,000. So 24 examples get a batch of 24 and 288
    iterations, not 3,000 iterations that mostly re-propose labels already settled."""
    batch = max(2, min(PAPER_BATCH_SIZE, n_examples))
    return {"batch_size": batch, "iterations": min(PAPER_ITERATIONS, ITERATIONS_PER_EXAMPLE * batch)}


def make_batches(examples: Sequence[Example], batch_size: int) -> list[list[int]]:
    """Split into batches of whole consistency groups (in order of first appearance), groups contiguous."""
    groups: dict[str, list[int]] = {}
    for ex in examples:
        groups.setdefault(ex.group, []).append(ex.uid)
    batches: list[list[int]] = []
    current: list[int] = []
    for members in groups.values():
        if current and len(current) + len(members) > batch_size:
            batches.append(current)
            current = []
        current.extend(members)
    if current:
        batches.append(current)
    return batches


def fingerprint(examples: Sequence[Example], task: Task) -> str:
    blob = json.dumps([[str(ex.id), ex.group, ex.key] for ex in examples] + [task.describe()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The search state saved at `path`, or None where there is none yet."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a search checkpoint ({exc})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a search checkpoint")
    return state


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
        self.code = self.config.effective_semantics == "code"  # the official code's choices
        self.batches = make_batches(self.examples, self.config.batch_size)
        # A shard of a larger run searches only batches [lo, hi). Batches are independent (each has its
        # own seeded stream), so shards run anywhere and in any order give the labels of one whole run.
        lo, hi = batch_range if batch_range is not None else (0, len(self.batches))
        if not 0 <= lo < hi <= len(self.batches):
            raise ValueError(f"batch range [{lo}, {hi}) is outside the {len(self.batches)} batches")
        self.batch_range = (lo, hi)
        self.fingerprint = fingerprint(self.examples, task)
        n = len(self.examples)
        self.labels: list[bool | None] = [None] * n
        self.scores: list[float | None] = [None] * n
        self.batch_index = lo
        self.iteration = 0
        self.total_iterations = 0
        self.accepted = 0
        self.rejected = 0
        self.flips_in_batch = 0
        self.initialized = False
        self.U = 0.0
        # The likelihood anchor of each example (computed once per batch, kept for the final orientation)
        # and the batches whose labels the orientation flipped.
        self.anchor: list[float | None] = [None] * n
        self.flipped_batches: list[int] = []
        # Examples in the order they were first labeled (demo_order "labeled" orders prompts by it).
        self.labeled_order: list[int] = []
        self.cache = ScoreCache(self.config.cache_size)
        self.rule: ConsistencyRule | None = None  # the current batch's (set up by _batch_setup)
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
            "batch_index": self.batch_index,
            "batch_range": list(self.batch_range),
            "labels": list(self.labels),
            "scores": list(self.scores),
            "iteration": self.iteration,
            "total_iterations": self.total_iterations,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "flips_in_batch": self.flips_in_batch,
            "initialized": self.initialized,
            "U": self.U,
            "anchor": list(self.anchor),
            "flipped_batches": list(self.flipped_batches),
            "labeled_order": list(self.labeled_order),
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
        self.batch_index = ck["batch_index"]
        self.labels = list(ck["labels"])
        self.scores = list(ck["scores"])
        self.iteration = ck["iteration"]
        self.total_iterations = ck["total_iterations"]
        self.accepted = ck["accepted"]
        self.rejected = ck["rejected"]
        self.flips_in_batch = ck["flips_in_batch"]
        self.initialized = ck["initialized"]
        self.U = ck["U"]
        self.anchor = list(ck.get("anchor") or self.anchor)
        self.flipped_batches = list(ck.get("flipped_batches") or [])
        self.labeled_order = list(ck.get("labeled_order") or [])
        set_rng_state(self.rng, ck["rng"])
        self.cache = ScoreCache(self.config.cache_size, ck["cache"])
        self.stats_base = BackendStats(**ck["stats"])
        self.elapsed_base = ck["elapsed_s"]

    # -- helpers -------------------------------------------------------------------------------------
    def temperature(self) -> float:
        c = self.config
        schedule = c.effective_schedule
        if schedule == "code":
            t = c.initial_temperature / (1 + 2 * math.log(1 + self.flips_in_batch))
        elif schedule == "exp":
            t = c.initial_temperature * c.cooling ** self.flips_in_batch
        else:
            t = c.initial_temperature / (1 + c.cooling * math.log(max(self.iteration, 1)))
        return max(c.final_temperature, t)

    def _batch_setup(self, index: int | None = None) -> None:
        uids = self.batches[self.batch_index if index is None else index]
        self.uids = uids
        self.rule = ConsistencyRule([self.examples[u] for u in uids], self.task.consistency)
        self.scorer = Scorer(self.task, self.backend, [self.examples[u] for u in uids],
                             readout=self.config.readout, reference=self.reference, floor=self.code,
                             cache=self.cache,
                             context_policy=self.config.context, context_cap=self.config.context_cap,
                             demo_order=self.config.demo_order)
        local = {u: p for p, u in enumerate(uids)}
        self.scorer.rank = {local[u]: r for r, u in enumerate(u for u in self.labeled_order if u in local)}

    def _local(self) -> list[bool | None]:
        return [self.labels[u] for u in self.uids]

    def _local_scores(self) -> list[float | None]:
        return [self.scores[u] for u in self.uids]

    def _evaluate(self, labels: list[bool | None]) -> tuple[float, list[float | None], int]:
        """Full U evaluation: every labeled example re-scored with all others in context."""
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
        st = self.stats()
        self.on_event(SearchEvent(
            kind=kind, batch=self.batch_index, batches=len(self.batches), iteration=self.iteration,
            iterations=self.config.iterations, temperature=self.temperature(), score=self.U,
            labeled=sum(y is not None for y in self.labels), size=len(self.examples), accepted=accepted,
            accepted_total=self.accepted, rejected_total=self.rejected,
            conflicts=self.rule.count(self._local()), model_calls=st.calls, prompts=st.prompts,
            prompt_tokens=st.prompt_tokens, computed_tokens=st.computed_tokens, elapsed_s=self.elapsed(),
            changed=changed or [],
        ))

    # -- ConsistencyFix --------------------------------------------------------------------------------
    def _fix_paper(self, labels, U, scores):
        """Paper's ConsistencyFix: best consistent option over a scan, adopted only if U strictly rises."""
        for _ in range(self.config.fix_steps):
            conflicts = self.rule.conflicts(labels)
            if not conflicts:
                break
            self.rng.shuffle(conflicts)
            best = None
            for conflict in conflicts:
                for yi, yj in self.rule.options(conflict):
                    cand = list(labels)
                    cand[conflict.i], cand[conflict.j] = yi, yj
                    cu, cs, _ = self._evaluate(cand)
                    if best is None or cu > best[0]:
                        best = (cu, cand, cs)
            if best is None or not best[0] > U:
                break
            U, labels, scores = best
        return labels, U, scores

    def _fix_code(self, labels, best_metric: float):
        """The official `fix_inconsistency`: two options per pair, first pair with U >= best adopted.

        Reproduces its never-reset "found" flag: once a fix was found, later rounds keep scanning
        until `fix_steps` runs out (a cost the official code pays).
        """
        found_any = False
        adopted: tuple | None = None
        for _ in range(self.config.fix_steps):
            conflicts: list[Conflict] = self.rule.conflicts(labels)
            if not conflicts:
                break
            self.rng.shuffle(conflicts)
            for conflict in conflicts:
                candidates = []
                for yi, yj in self.rule.options(conflict, official=True):
                    cand = list(labels)
                    cand[conflict.i], cand[conflict.j] = yi, yj
                    candidates.append((*self._evaluate(cand)[:2], cand))
                cu, cs, cand = max(candidates, key=lambda c: c[0])
                if cu >= best_metric:
                    labels, best_metric, adopted = cand, cu, (cu, cs)
                    found_any = True
                    break
            if not found_any:
                break
        return labels, adopted

    # -- the algorithm ---------------------------------------------------------------------------------
    def _init_batch(self) -> None:
        n = len(self.uids)
        k = min(self.config.num_seed, n)
        positions = list(range(k)) if self.code else sorted(self.rng.sample(range(n), k))
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
        U, scores, conflicts = self._evaluate(labels)
        if conflicts:
            if self.code:
                fixed, adopted = self._fix_code(labels, U)
                if adopted is not None:
                    labels = fixed
                    U, scores, _ = self._evaluate(labels)
            else:
                labels, U, scores = self._fix_paper(labels, U, scores)
        self._store(labels, scores)
        self.U = U
        self.initialized = True
        self._emit("init")

    def _batch_anchor(self) -> list[float]:
        if any(self.anchor[u] is None for u in self.uids):
            values = likelihood_anchor(self.task, self.backend, [self.examples[u] for u in self.uids])
            for u, v in zip(self.uids, values, strict=True):
                self.anchor[u] = v
        return [float(self.anchor[u]) for u in self.uids]

    def _orient(self) -> list[tuple[Any, bool | None]]:
        """Flip the batch's labels (and scores) when they disagree with the anchor overall.

        A label set and its mirror image are equally consistent, and nearly equally predictable under a
        symmetric readout; the anchor decides which of the two is meant. Only the naming of the two
        classes changes: the search's partition stays as found.
        """
        labels = self._local()
        if agreement(labels, self._batch_anchor()) >= 0:
            return []
        changed = []
        for u in self.uids:
            if self.labels[u] is not None:
                self.labels[u] = not self.labels[u]
                changed.append((self.examples[u].id, self.labels[u]))
            if self.scores[u] is not None:
                self.scores[u] = -self.scores[u]
        self.flipped_batches.append(self.batch_index)
        return changed

    def _store(self, labels, scores) -> list[tuple[Any, bool | None]]:
        changed = []
        for p, u in enumerate(self.uids):
            if self.labels[u] is None and labels[p] is not None:
                self.scorer.rank[p] = len(self.scorer.rank)
                self.labeled_order.append(u)
            if self.labels[u] != labels[p]:
                changed.append((self.examples[u].id, labels[p]))
            self.labels[u] = labels[p]
            self.scores[u] = scores[p]
        return changed

    def _step(self) -> None:
        c = self.config
        self.iteration += 1
        self.total_iterations += 1
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
        threshold = centre(labels, scores) if self.config.calibrate else 0.0
        proposal = proposal_score > threshold
        if labels[pos] == proposal:
            self._emit("iteration", accepted=None)
            return
        new = list(labels)
        new[pos] = proposal
        if self.code:
            # The code repairs with a dummy metric (the first option found is adopted), then re-scores.
            new, _ = self._fix_code(new, -math.inf)
            new_u, new_scores, _ = self._evaluate(new)
        else:
            new_u, new_scores, conflicts = self._evaluate(new)
            if conflicts:
                new, new_u, new_scores = self._fix_paper(new, new_u, new_scores)
        delta = new_u - self.U
        draw = self.rng.random()
        accept = draw < accept_probability(delta, T) or delta > 0
        changed: list = []
        if accept:
            changed = self._store(new, new_scores)
            self.U = new_u
            self.accepted += 1
            self.flips_in_batch += 1
        else:
            self.rejected += 1
        self._emit("iteration", accepted=accept, changed=changed)

    def _finish_batch(self) -> None:
        """Score examples the search never labeled, given the final labeled set (labels stay None)."""
        labels = self._local()
        todo = [p for p, y in enumerate(labels) if y is None]
        if todo and any(y is not None for y in labels):
            for p, v in zip(todo, self.scorer.loo(labels, todo), strict=True):
                self.scores[self.uids[p]] = float(v)
        if self.config.calibrate:
            # Report calibrated scores, so their sign is the label ICM would propose.
            offset = centre(labels, self._local_scores())
            for u in self.uids:
                if self.scores[u] is not None:
                    self.scores[u] -= offset
        changed = self._orient() if self.config.anchor == "likelihood" else []
        self._emit("batch_done", changed=changed)
        self.batch_index += 1
        self.iteration = 0
        self.flips_in_batch = 0
        self.initialized = False
        self.U = 0.0

    def run(self, should_stop: Callable[[], bool] | None = None) -> ICMResult:
        """Run (or continue) until every batch is done or `should_stop()` says stop."""
        # Fold what earlier runs of this object cost into the base, so a second run() keeps counting.
        self.stats_base, self.elapsed_base = self.stats(), self.elapsed()
        self._t0 = time.monotonic()
        self._stats_origin = self.backend.stats.copy()
        stopped = False
        while self.batch_index < self.batch_range[1]:
            self._batch_setup()
            if not self.initialized:
                # Each batch draws from its own seeded stream, so batches do not depend on each other.
                self.rng.seed(f"{self.config.seed}:{self.batch_index}")
                self._init_batch()
            while self.iteration < self.config.iterations:
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
                self._batch_setup(self.batch_range[1] - 1)
            self._emit("done")
        st = self.stats()
        return ICMResult(
            labels=list(self.labels), scores=list(self.scores), stats=st, wall_s=self.elapsed(),
            complete=not stopped, iterations=self.total_iterations, accepted=self.accepted, rejected=self.rejected,
            cache_hits=self.cache.hits, flipped_batches=list(self.flipped_batches),
        )
