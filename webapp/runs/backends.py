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


def allowed_backends() -> list[str]:
    """The backends a run may use: ICM_ALLOWED_BACKENDS, else transformers, openai where a server is configured
    and every plugin's (an operator installs a plugin to use it)."""
    known = backend_names()
    if settings.ICM_ALLOWED_BACKENDS:
        return [b for b in settings.ICM_ALLOWED_BACKENDS if b in known]
    chosen = ["transformers", *(["openai"] if openai_base_urls() else [])]
    return chosen + [b for b in known if b not in BACKENDS]


def allowed_models() -> list[str]:
    """What the transformers and vLLM backends may load: the packaged model and ICM_ALLOWED_MODELS."""
    return list(dict.fromkeys([DEFAULT_MODEL, *settings.ICM_ALLOWED_MODELS]))


def openai_base_urls() -> list[str]:
    return list(dict.fromkeys(u.rstrip("/") for u in [settings.ICM_OPENAI_BASE_URL, *settings.ICM_OPENAI_BASE_URLS]
                              if u))


def openai_models() -> list[str]:
    return list(dict.fromkeys(m for m in [settings.ICM_OPENAI_MODEL, *settings.ICM_OPENAI_MODELS] if m))


def check_backend(backend: str, model: str, options: dict[str, Any]) -> None:
    """Refuse, before anything is queued, a backend, model or server the operator did not offer. The refusal
    names what is offered and never echoes the request's value, so it says nothing about the server's files."""
    offered = allowed_backends()
    if backend not in offered:
        raise ValidationError({"backend": f"this server does not offer that backend; choose one of "
                                          f"{', '.join(offered)}"})
    if backend in ("transformers", "vllm"):
        models = allowed_models()
        if (model or DEFAULT_MODEL) not in models:
            raise ValidationError({"model": f"this server does not offer that model; choose one of "
                                            f"{', '.join(models)} (the operator lists more in ICM_ALLOWED_MODELS)"})
        if backend == "transformers" and model_kind(model or DEFAULT_MODEL) is None:
            raise ValidationError({"model": unknown_model(model or DEFAULT_MODEL)})
        if backend == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ValidationError({"backend": "vLLM is not installed on this server (pip install 'icm-studio[vllm]')"})
    if options.get("base_url") and backend != "openai":
        raise ValidationError({"base_url": "only the openai backend takes a server URL"})
    if backend == "openai":
        urls, models = openai_base_urls(), openai_models()
        if options.get("base_url") and str(options["base_url"]).rstrip("/") not in urls:
            raise ValidationError({"base_url": f"this server does not offer that model server; choose one of "
                                               f"{', '.join(urls)} (ICM_OPENAI_BASE_URLS)"})
        if not models:
            raise ValidationError({"model": "the openai backend needs the served model's name on the server "
                                            "(ICM_OPENAI_MODEL)"})
        if model and model not in models:
            raise ValidationError({"model": f"this server does not offer that model; choose one of "
                                            f"{', '.join(models)} (ICM_OPENAI_MODELS)"})


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
        opts["base_url"] = str(opts.get("base_url") or openai_base_urls()[0]).rstrip("/")
        model = model or settings.ICM_OPENAI_MODEL
    return get_backend(backend, model or None, **opts)
