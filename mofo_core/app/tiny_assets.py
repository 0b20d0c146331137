"""Tiny random stand-ins for every model file (tests and the offline demo). RANDOM WEIGHTS: outputs are noise.

Each builder writes files in the same layout as the real ones, so the real loading code paths run:
a DiT `model.safetensors` (+ `config.json`), the autoencoder's split files, and a Qwen3 directory with a
byte-level tokenizer whose chat template renders like Qwen3's for one user turn with thinking off.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

# Renders "<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n" like Qwen3's
# template does for one user message with add_generation_prompt=True and enable_thinking=False.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
TINY_QWEN_HIDDEN = 16  # 3 layers x 16 = 48 text features, the DiT's tiny() context width


def build_tiny_tokenizer(out_dir: Path):
    """Byte-level BPE without merges (one token per byte) + Qwen's special tokens; saved to out_dir."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>", chat_template=CHAT_TEMPLATE
    )
    fast.save_pretrained(str(out_dir))
    return fast


def build_tiny_qwen3(out_dir: str | Path, *, seed: int = 0, hidden: int = TINY_QWEN_HIDDEN, layers: int = 28) -> Path:
    """A random Qwen3 causal LM with >= 27 layers (hidden states 9 / 18 / 27 exist) and its tokenizer."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(out)
    cfg = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=hidden // 2,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg)
    with torch.no_grad():  # larger than the default 0.02 init so layer outputs differ visibly
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.3)
    model.save_pretrained(str(out), safe_serialization=True)
    return out


def build_tiny_dit_files(out_dir: str | Path, *, variant: str = "flux_rgbd_9b_v2", seed: int = 0) -> Path:
    """model.safetensors ('dit.' keys, as released) + config.json {"variant"} for a tiny() DiT."""
    from safetensors.torch import save_file

    from ..config import tiny
    from ..weights.loading import build_dit

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_dit(tiny(variant, context_in_dim=3 * TINY_QWEN_HIDDEN), seed=seed)
    save_file({f"dit.{k}": v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps({"variant": variant, "note": "tiny RANDOM weights (demo/tests)"}))
    return out


def build_tiny_autoencoder_files(out_dir: str | Path, *, seed: int = 0) -> Path:
    """ae_encoder.safetensors / ae_decoder.safetensors of a tiny random FLUX.2 autoencoder."""
    from safetensors.torch import save_file

    from ..encoders.autoencoder import AutoEncoderConfig, build_autoencoder

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ae = build_autoencoder(AutoEncoderConfig.tiny(), seed=seed)
    for part in ("encoder", "decoder"):
        sd = {k: v.contiguous() for k, v in getattr(ae, part).state_dict().items()}
        save_file(sd, str(out / f"ae_{part}.safetensors"))
    return out
