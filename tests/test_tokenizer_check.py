"""A tokenizer that transformers converted wrongly from a GGUF file is refused, never used.

transformers 5.16 and 5.17 build Gemma 3's tokenizer from its GGUF file as one that splits words into
characters: every score is then noise and nothing fails. The backend probes the tokenizer when it
converts a GGUF file (and writes nothing) and when it loads a folder it converted earlier.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import transformers

from icm_engine.backends.base import BackendError
from icm_engine.backends.hf import TOKENIZER_PROBE, TransformersBackend, check_converted_tokenizer, resolve_model_dir
from icm_engine.backends.hf import backend as hf_backend
from icm_engine.backends.hf.model_files import _dequantized_dir


class CharacterTokenizer:
    """What a broken conversion amounts to: one token per character."""

    pad_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = True) -> SimpleNamespace:
        return SimpleNamespace(input_ids=[ord(c) for c in text])


def test_a_character_level_tokenizer_is_refused_with_the_fix():
    with pytest.raises(BackendError) as err:
        check_converted_tokenizer(CharacterTokenizer(), Path("m.gguf"), cached=Path("/cache/models/m"))
    message = str(err.value)
    assert message.startswith("m.gguf: ") and f"into {len(TOKENIZER_PROBE)} tokens" in message
    assert transformers.__version__ in message and "delete /cache/models/m" in message


@pytest.mark.model
def test_the_packaged_models_tokenizer_passes():
    tokenizer = transformers.AutoTokenizer.from_pretrained(resolve_model_dir("gemma3-270m"))
    assert len(tokenizer(TOKENIZER_PROBE, add_special_tokens=False).input_ids) == 15
    check_converted_tokenizer(tokenizer, Path("gemma3-270m"))


def test_a_broken_conversion_writes_no_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ICM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: CharacterTokenizer())
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(BackendError, match="converted the GGUF tokenizer wrongly"):
        _dequantized_dir(gguf, "m")
    assert not (tmp_path / "cache" / "models" / "m").exists()


def test_a_folder_converted_earlier_is_probed_when_loaded(tmp_path, monkeypatch):
    """A folder an older transformers converted stays in the cache: loading it must not pass silently."""
    monkeypatch.setenv("ICM_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "models" / "gguf-m-1"
    folder.mkdir(parents=True)
    monkeypatch.setattr(hf_backend, "resolve_model_dir", lambda model: folder)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: CharacterTokenizer())
    with pytest.raises(BackendError, match=f"delete {folder}"):
        TransformersBackend(str(tmp_path / "m.gguf"))
