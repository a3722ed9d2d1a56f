"""Model backends behind one protocol (see `base.Backend`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from .base import Backend, BackendError, BackendStats, Capabilities

BACKENDS = ("transformers", "openai", "vllm")
DEFAULT_MODEL = "gemma3-270m"

# Backends added by plugins (a module that calls register_backend when imported): a model server of one's
# own, or a test's deterministic fake. Empty unless something registers one.
_REGISTERED: dict[str, Callable[..., Backend]] = {}


def register_backend(name: str, factory: Callable[..., Backend]) -> None:
    """Make `get_backend(name, model, **options)` call `factory(model, **options)`. The factory's backends
    follow the `Backend` protocol, their `capabilities` (a `Capabilities`) included."""
    if name in BACKENDS:
        raise ValueError(f"{name!r} is a built-in backend")
    _REGISTERED[name] = factory


def load_plugins(modules: Iterable[str]) -> None:
    """Import each module (by dotted name): importing it registers its backends."""
    for module in modules:
        importlib.import_module(module)


def backend_names() -> tuple[str, ...]:
    """The built-in backends, then those registered."""
    return BACKENDS + tuple(_REGISTERED)


def get_backend(name: str = "transformers", model: str | None = None, **options: Any) -> Backend:
    """Build a backend by name. Heavy imports happen here, not at package import."""
    if name in _REGISTERED:
        return _REGISTERED[name](model, **options)
    if name == "transformers":
        from .hf import TransformersBackend

        return TransformersBackend(model or DEFAULT_MODEL, **options)
    if name == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend(model or DEFAULT_MODEL, **options)
    if name == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(model or DEFAULT_MODEL, **options)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(backend_names())}")


__all__ = ["BACKENDS", "DEFAULT_MODEL", "Backend", "BackendError", "BackendStats", "Capabilities", "backend_names",
           "get_backend", "load_plugins", "register_backend"]
