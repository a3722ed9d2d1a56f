"""A deterministic fake backend for unit tests of the search (never used by the product).

Each example's text carries a marker, "pos" or "neg", standing for what the model "knows". The
fake's log-odds for a target is its marker's sign times a strength that grows with how many
demonstrations in the prompt are labeled in agreement with their own markers, so mutual
predictability rewards coherent label sets, as a real model's in-context learning does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from icm_engine.backends.base import BackendStats, Capabilities

TEMPLATE = "Item: {text}\nLabel:"
WORDS = (" T", " F")


def _sign(text: str) -> int:
    return 1 if "pos" in text else -1


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x > -30 else x


class FakeBackend:
    name = "fake"
    capabilities = Capabilities()
    model_name = "fake"

    def __init__(self, noise: float = 0.3, record: bool = False):
        self.noise = noise
        self.stats = BackendStats()
        self.record = record
        self.prompts: list[str] = []

    def describe(self) -> dict:
        return {"backend": "fake"}

    def _odds(self, prompt: str) -> float:
        parts = prompt.split("\n\n")
        demos, target = parts[:-1], parts[-1]
        agree = 0
        for d in demos:
            m = re.match(r"Item: (.*)\nLabel: ([TF])$", d, re.S)
            if m:
                agree += 1 if (_sign(m.group(1)) > 0) == (m.group(2) == "T") else -1
        strength = 1.0 + 0.5 * agree / max(len(demos), 1)
        # A deterministic per-text wobble keeps some examples hard.
        wobble = self.noise * math.sin(sum(map(ord, target)))
        return _sign(target) * strength + wobble - 0.2

    def label_logprobs(self, prompts: Sequence[str], label_words: Sequence[str]) -> np.ndarray:
        self.stats.model_calls += 1
        self.stats.prompts += len(prompts)
        tokens = sum(len(p.split()) for p in prompts)
        self.stats.prompt_tokens += tokens
        self.stats.computed_tokens += tokens
        if self.record:
            self.prompts.extend(prompts)
        out = np.zeros((len(prompts), 2))
        for k, p in enumerate(prompts):
            s = self._odds(p)
            out[k] = (_log_sigmoid(s) - 1.0, _log_sigmoid(-s) - 1.0)
        return out

    def continuation_logprobs(self, prefixes: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        """Only what the likelihood anchor asks (a claim after a label-free prefix): the model "knows" the
        marker, so a "pos" claim is likelier, with the same per-text wobble and a length penalty."""
        self.stats.model_calls += 1
        self.stats.prompts += len(prefixes)
        tokens = sum(len((p + c).split()) for p, c in zip(prefixes, continuations, strict=True))
        self.stats.prompt_tokens += tokens
        self.stats.computed_tokens += tokens
        return np.array([_sign(c) + self.noise * math.sin(sum(map(ord, c))) - 0.5 * len(c.split())
                         for c in continuations])


class TableBackend:
    """Log-odds fixed per target text, independent of context: for hand-computed cases."""

    name = "table"
    capabilities = Capabilities()
    model_name = "table"

    def __init__(self, table: dict[str, float]):
        self.table = table
        self.stats = BackendStats()

    def describe(self) -> dict:
        return {"backend": "table"}

    def label_logprobs(self, prompts: Sequence[str], label_words: Sequence[str]) -> np.ndarray:
        self.stats.model_calls += 1
        self.stats.prompts += len(prompts)
        out = np.zeros((len(prompts), 2))
        for k, p in enumerate(prompts):
            text = re.search(r"Item: (.*)\nLabel:$", p.split("\n\n")[-1], re.S).group(1)
            out[k] = (self.table[text], 0.0)
        return out

    def continuation_logprobs(self, prefixes, continuations):
        raise NotImplementedError


class CallGate:
    """Model calls held until the test lets them through, in this process or a Celery worker's: a
    SlowFakeBackend made with gate=<key> and gate_url=<Redis URL> announces each call on `<key>:arrived` and
    waits for one token on `<key>` (or for the gate to be open). The test decides how far a run gets, and
    waits for a call to arrive instead of sleeping."""

    def __init__(self, url: str, key: str | None = None):
        import uuid

        import redis

        self.url, self.key = url, key or f"icm-test-gate:{uuid.uuid4().hex}"
        self.redis = redis.Redis.from_url(url, socket_timeout=None)  # BLPOP waits longer than a default timeout

    @property
    def options(self) -> dict:
        """The backend options that put a run's model calls behind this gate."""
        return {"gate": self.key, "gate_url": self.url}

    def release(self, n: int = 1) -> None:
        self.redis.rpush(self.key, *["go"] * n)

    def open(self) -> None:
        """Every call from now on passes (and the ones waiting are woken)."""
        self.redis.set(f"{self.key}:open", "1")
        self.release(64)

    def wait_arrival(self, timeout: float = 60.0) -> bool:
        """Wait until the next call arrives at the gate (False if none arrives within `timeout`)."""
        return self.redis.blpop([f"{self.key}:arrived"], timeout=timeout) is not None

    def close(self) -> None:
        """Open for good (a run still going finishes), the keys gone a minute later."""
        self.open()
        for key in (self.key, f"{self.key}:arrived", f"{self.key}:open"):
            self.redis.expire(key, 60)
        self.redis.close()

    @staticmethod
    def pass_through(key: str, url: str) -> None:
        """A call's side: announce it, then wait for a token or the open gate."""
        import redis

        r = redis.Redis.from_url(url, socket_timeout=None)
        try:
            r.rpush(f"{key}:arrived", "1")
            # The timeout only lets a waiting call see the gate opened by another's token.
            while not r.exists(f"{key}:open"):
                if r.blpop([key], timeout=1) is not None:
                    return
        finally:
            r.close()


class LocalCallGate:
    """A CallGate for runs in this process (the in-process tests): the same calls and the same promises, kept
    with threading's primitives, so those tests need no Redis. Runs find it by its key."""

    URL = "local:"
    _open_gates: ClassVar[dict[str, LocalCallGate]] = {}

    def __init__(self) -> None:
        import threading
        import uuid

        self.key = f"icm-local-gate:{uuid.uuid4().hex}"
        self.tokens = threading.Semaphore(0)
        self.arrivals = threading.Semaphore(0)
        self.opened = threading.Event()
        LocalCallGate._open_gates[self.key] = self

    @property
    def options(self) -> dict:
        return {"gate": self.key, "gate_url": self.URL}

    def release(self, n: int = 1) -> None:
        self.tokens.release(n)

    def open(self) -> None:
        self.opened.set()

    def wait_arrival(self, timeout: float = 60.0) -> bool:
        return self.arrivals.acquire(timeout=timeout)

    def close(self) -> None:
        self.open()
        LocalCallGate._open_gates.pop(self.key, None)

    @classmethod
    def pass_through(cls, key: str) -> None:
        gate = cls._open_gates.get(key)
        if gate is None:  # closed: open for good
            return
        gate.arrivals.release()
        # The timeout only lets a waiting call see the gate opened while it waited.
        while not gate.opened.is_set():
            if gate.tokens.acquire(timeout=0.2):
                return


class SlowFakeBackend(FakeBackend):
    """FakeBackend whose calls a test can hold: behind a CallGate (`gate`, `gate_url`), so that a test acts while
    a run is mid-way; `delay` seconds each, a model's latency, so that a run streams its progress over some
    time (and the load measurements see a model served elsewhere); with `fail_flag`, every call fails while
    that file exists (a backend outage the test can end)."""

    name = "slow-fake"

    def __init__(self, delay: float = 0.02, fail_flag: str | None = None, gate: str | None = None,
                 gate_url: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.delay = delay
        self.fail_flag = fail_flag
        self.gate = (gate, gate_url) if gate and gate_url else None

    def label_logprobs(self, prompts, label_words):
        import os
        import time

        from icm_engine.backends.base import BackendError

        if self.fail_flag and os.path.exists(self.fail_flag):
            raise BackendError("the model server is unreachable (test outage)")
        if self.gate and self.gate[1] == LocalCallGate.URL:
            LocalCallGate.pass_through(self.gate[0])
        elif self.gate:
            CallGate.pass_through(*self.gate)
        if self.delay:
            time.sleep(self.delay)
        return super().label_logprobs(prompts, label_words)


def _register() -> None:
    # Importing this module makes the fake a backend by name, in this process: the web app's tests name it,
    # and their Celery workers load it with ICM_BACKEND_PLUGINS=tests.fakes.
    from icm_engine.backends import register_backend

    register_backend("slow-fake", lambda model, **options: SlowFakeBackend(**options))


_register()


class ManualClock:
    """A clock the test moves by hand (the websocket consumer's `clock`): its sleeps end when the test has
    moved it past their deadline, so a throttle is tested by events, not by waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.sleepers: list[tuple[float, object]] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        import asyncio

        if seconds <= 0:
            return
        woken = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.time + seconds, woken))
        await woken

    def advance(self, seconds: float) -> None:
        """Move the clock on; every sleep whose deadline it passes ends (call from the sleepers' loop)."""
        self.time += seconds
        due = [(t, w) for t, w in self.sleepers if t <= self.time]
        self.sleepers = [(t, w) for t, w in self.sleepers if t > self.time]
        for _, woken in due:
            if not woken.done():
                woken.set_result(None)
