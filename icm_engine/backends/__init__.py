"""Model backends behind one protocol (see `base.Backend`)."""

from __future__ import annotations

from typing import Any

from .base import Backend, BackendError, BackendStats

BACKENDS = ("transformers", "openai", "vllm")
DEFAULT_MODEL = "gemma3-270m"


def get_backend(name: str = "transformers", model: str | None = None, **options: Any) -> Backend:
    """Build a backend by name. Heavy imports happen here, not at package import."""
    if name == "transformers":
        from .hf import TransformersBackend

        return TransformersBackend(model or DEFAULT_MODEL, **options)
    if name == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend(model or DEFAULT_MODEL, **options)
    if name == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(model or DEFAULT_MODEL, **options)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "DEFAULT_MODEL", "Backend", "BackendError", "BackendStats", "get_backend"]
