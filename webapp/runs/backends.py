"""Which model backends a run may use, checked before anything is queued, and building them in a worker."""

from __future__ import annotations

import importlib
import importlib.util
import json
import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from icm_engine.facade import BACKENDS, DEFAULT_MODEL, Backend, backend_names, get_backend, model_kind, unknown_model

KEEP_BACKENDS = 2
_built: dict[tuple[str, str, str], Backend] = {}
_lock = threading.Lock()


def check_backend(backend: str, model: str, options: dict[str, Any]) -> None:
    """Refuse an unknown backend or model now, not in the worker minutes later."""
    if backend not in backend_names():
        raise ValidationError({"backend": f"unknown backend {backend!r}; choose one of {', '.join(backend_names())}"})
    if backend == "transformers":
        name = model or DEFAULT_MODEL
        if model_kind(name) is None:
            raise ValidationError({"model": unknown_model(name)})
    elif backend == "openai":
        if not (options.get("base_url") or settings.ICM_OPENAI_BASE_URL):
            raise ValidationError({"base_url": "the openai backend needs a server URL (base_url, or "
                                               "ICM_OPENAI_BASE_URL on the server)"})
        if not (model or settings.ICM_OPENAI_MODEL):
            raise ValidationError({"model": "the openai backend needs the served model's name (or ICM_OPENAI_MODEL "
                                            "on the server)"})
    elif backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ValidationError({"backend": "vLLM is not installed on this server (pip install 'icm-studio[vllm]')"})


def build_backend(backend: str, model: str, options: dict[str, Any]) -> Backend:
    """A backend for a run. A worker keeps the last ones it built: loading a model takes seconds, and
    consecutive runs (ICM, then its baselines) usually share one. Engines read cost as deltas of `stats`."""
    if backend not in BACKENDS:  # a plugin's backend is built for each run and keeps what it will itself
        return _build(backend, model, options)
    key = (backend, model, json.dumps(options, sort_keys=True))
    with _lock:
        if key not in _built:
            _built[key] = _build(backend, model, options)
            while len(_built) > KEEP_BACKENDS:
                _built.pop(next(iter(_built)))
        else:
            _built[key] = _built.pop(key)  # most recently used last
        return _built[key]


def _build(backend: str, model: str, options: dict[str, Any]) -> Backend:
    opts = dict(options)
    if backend == "openai":
        opts["base_url"] = opts.get("base_url") or settings.ICM_OPENAI_BASE_URL
        model = model or settings.ICM_OPENAI_MODEL
    return get_backend(backend, model or None, **opts)
