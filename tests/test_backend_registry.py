"""Backends of one's own: a plugin module registers a factory by name; the built-in names stay reserved."""

from __future__ import annotations

import pytest

from icm_engine.backends import BACKENDS, backend_names, get_backend, load_plugins, register_backend

from .fakes import SlowFakeBackend


def test_a_registered_backend_is_built_by_name_with_its_options():
    load_plugins(["tests.fakes"])  # importing the module registers its fake
    assert backend_names()[: len(BACKENDS)] == BACKENDS and "slow-fake" in backend_names()
    backend = get_backend("slow-fake", None, delay=0.0)
    assert isinstance(backend, SlowFakeBackend) and backend.delay == 0.0


def test_built_in_names_are_reserved_and_unknown_names_say_what_exists():
    with pytest.raises(ValueError, match="built-in"):
        register_backend("transformers", lambda model, **options: SlowFakeBackend())
    with pytest.raises(ValueError, match=r"unknown backend 'nope'.*transformers"):
        get_backend("nope")
    with pytest.raises(ModuleNotFoundError):
        load_plugins(["no_such_plugin_module"])
