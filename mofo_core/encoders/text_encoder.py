"""Qwen3 text embedder: prompt -> (B, 512, 3 * hidden) features from layers 9, 18 and 27.

Same function as the reference `Qwen3Embedder` (`Duisterhof/modality-forcing: flux_rgbd/text_encoder.py`):
chat template with one user turn and thinking off, truncation at 512 tokens, right-padding by hand with
the tokenizer's pad id to exactly 512, hidden states 9 / 18 / 27 (index 0 = embeddings; raw residual
stream, no final norm) concatenated per token; padded positions are kept. The null conditioning is the
encoded empty prompt. Deltas (memory, not numerics): only the first 27 decoder layers and no LM head are
loaded (hidden state 27 does not depend on the rest), bf16 is asked for explicitly instead of relying on
`dtype=None`, and `release()` frees the weights once the prompts are encoded. transformers is imported
only when an embedder is built.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..config import TEXT_TOKENS
from ..errors import CheckpointError, PromptTooLongError
from ..weights.checkpoint import check_dtypes, check_keys, expected_shapes, read_header

log = logging.getLogger(__name__)

OUTPUT_LAYERS = (9, 18, 27)  # FLUX.2 [klein] recipe (reference `_flux2/constants.py` OUTPUT_LAYERS_QWEN3)
DEFAULT_TEXT_ENCODER = "Qwen/Qwen3-8B"


_CONFIG_INTS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
_FIX = "download the text encoder again (Qwen/Qwen3-8B) or pass another folder with --text-encoder"


def check_text_encoder_files(path: str | Path, *, output_layers: Sequence[int] = OUTPUT_LAYERS):
    """Check a Qwen3 folder without loading weights; returns its transformers config (num_hidden_layers cut to
    the layers used). Every problem is a `CheckpointError` naming the file: config.json unreadable or not Qwen3,
    no `*.safetensors` (pickle `.bin` weights are never loaded), a truncated / malformed safetensors header,
    tensors of a non-float dtype, missing or mis-shaped tensors for the layers used."""
    path = Path(path)
    cfg_path = path / "config.json"
    # 1. config.json: a JSON object naming a Qwen model with enough layers
    try:
        doc = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: not a readable JSON file ({e}); {_FIX}") from e
    if not isinstance(doc, dict):
        raise CheckpointError(f"{cfg_path}: expected a JSON object, got a {type(doc).__name__}; {_FIX}")
    if doc.get("model_type") not in ("qwen3", "qwen2", "qwen3_moe"):
        raise CheckpointError(f"{cfg_path}: model_type {doc.get('model_type')!r}; the text encoder must be Qwen3-8B")
    bad = [k for k in _CONFIG_INTS if isinstance(doc.get(k), bool) or not isinstance(doc.get(k), int) or doc[k] < 1]
    if bad:
        raise CheckpointError(f"{cfg_path}: {', '.join(bad)} must be positive integers; {_FIX}")
    keep = max(output_layers)
    if doc["num_hidden_layers"] < keep:
        raise CheckpointError(f"{cfg_path}: {doc['num_hidden_layers']} layers, but hidden state {keep} is needed")
    # 2. safetensors only; every header bounded and valid, float tensors only
    files = sorted(path.glob("*.safetensors"))
    if not files:
        pickles = sorted(p.name for p in path.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        only = f" (only pickle files: {pickles[:3]})" if pickles else ""
        raise CheckpointError(f"{path}: no .safetensors weights{only}; only safetensors are loaded -- {_FIX}")
    found: dict[str, tuple[int, ...]] = {}
    for f in files:
        header = read_header(f, fix=_FIX)
        check_dtypes(header, "the Qwen3 text encoder")
        found.update({k.removeprefix("model."): v for k, v in header.shapes.items()})
    # 3. the tensors of the layers used, against a meta skeleton of the configured model
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(str(path), num_hidden_layers=keep)
        expected = expected_shapes(lambda: AutoModel.from_config(config))
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # transformers' errors on odd config values
        raise CheckpointError(f"{cfg_path}: transformers cannot build a model from it ({e}); {_FIX}") from e
    check_keys(expected, {k: v for k, v in found.items() if k in expected}, f"{path} (text encoder weights)")
    return config


class QwenTextEmbedder:
    """Tokenizer + truncated Qwen3 decoder; `encode(prompts)` returns fp32 (B, 512, 3 * hidden)."""

    def __init__(self, tokenizer, model, *, max_length: int = TEXT_TOKENS, output_layers=OUTPUT_LAYERS):
        self.tokenizer, self.model = tokenizer, model
        self.max_length, self.output_layers = max_length, tuple(output_layers)
        pad = tokenizer.pad_token_id
        self.pad_id = 0 if pad is None else pad  # the reference's fallback

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.bfloat16,
        output_layers: Sequence[int] = OUTPUT_LAYERS,
    ) -> QwenTextEmbedder:
        """Load from a local directory (resolve repo ids first with `mofo_core.weights.download`)."""
        from transformers import AutoModel, AutoTokenizer

        path = Path(path)
        config = check_text_encoder_files(path, output_layers=output_layers)  # cheap; before any weights load
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        keep = max(output_layers)
        kwargs = dict(config=config, dtype=dtype, use_safetensors=True)  # config: the first `keep` layers
        try:
            import accelerate  # noqa: F401  (lets transformers load straight onto the device)

            kwargs["device_map"] = str(device)
        except ImportError:
            pass
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the unused layers 28+ and lm_head are skipped on purpose
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # one loading bar per shard, repeated per load: noise on the console
        try:
            model, info = AutoModel.from_pretrained(str(path), output_loading_info=True, **kwargs)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        if info.get("missing_keys"):
            missing = sorted(info["missing_keys"])
            raise ValueError(f"{path}: text-encoder weights are missing {len(missing)} tensors ({missing[:5]} ...); "
                             "the files are incomplete or not Qwen3-8B")
        model = model.to(device).eval().requires_grad_(False)
        log.info("text encoder %s: %d layers loaded (%s)", path.name, keep, dtype)
        return cls(tokenizer, model, output_layers=output_layers)

    @classmethod
    def tokenizer_only(cls, path: str | Path) -> QwenTextEmbedder:
        """Just the tokenizer (prompt checks before gigabytes of weights load); encode() is unavailable."""
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(path)), None)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def format(self, prompt: str) -> str:
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True, enable_thinking=False
        )

    def tokenize(self, prompts: Sequence[str], *, truncate: bool = False) -> tuple[Tensor, Tensor]:
        """(input_ids, attention_mask), each (B, 512); right-padded with the pad id.

        truncate=False raises PromptTooLongError for a prompt over 512 tokens (template included); True
        cuts it at 512 as the reference does silently (the template's closing tokens are lost).
        """
        rows = self.tokenizer([self.format(p) for p in prompts], padding=False, truncation=False)["input_ids"]
        ids = torch.full((len(rows), self.max_length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), self.max_length), dtype=torch.long)
        for i, row in enumerate(rows):
            if len(row) > self.max_length and not truncate:
                raise PromptTooLongError(
                    f"prompt {i} is {len(row)} tokens with the chat template; the model reads {self.max_length}. "
                    "Shorten it, or allow truncation (CLI --truncate-prompt, Python truncate_prompt=True), which drops "
                    "the end as the reference does",
                    tokens=len(row), limit=self.max_length,
                )
            n = min(len(row), self.max_length)
            ids[i, :n] = torch.tensor(row[:n], dtype=torch.long)
            mask[i, :n] = 1
        return ids, mask

    @torch.inference_mode()
    def encode(self, prompts: str | Sequence[str], *, truncate: bool = False) -> Tensor:
        """fp32 (B, 512, len(output_layers) * hidden) on the encoder's device."""
        if self.model is None:
            raise RuntimeError("this text encoder holds no weights (released, or tokenizer only); load it again")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        ids, mask = self.tokenize(prompts, truncate=truncate)
        dev = self.device
        captured: dict[int, Tensor] = {}
        layers = self.model.layers
        hooks = []
        for k in self.output_layers:  # hidden_states[k] is the output of decoder layer k-1 (0-based)
            def hook(_m, _inp, out, k=k):
                captured[k] = out[0] if isinstance(out, tuple) else out

            hooks.append(layers[k - 1].register_forward_hook(hook))
        try:
            self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=False)
        finally:
            for h in hooks:
                h.remove()
        feats = torch.stack([captured[k] for k in self.output_layers], dim=1)  # (B, 3, L, D)
        b, c, length, d = feats.shape
        return feats.permute(0, 2, 1, 3).reshape(b, length, c * d).float()  # (B, L, 3D): [L9 | L18 | L27]

    def release(self) -> None:
        """Drop the weights (frees host or GPU memory); encode() afterwards is an error."""
        import gc

        dev = self.device if self.model is not None else torch.device("cpu")
        self.model = None
        gc.collect()  # transformers models hold reference cycles: without this the weights linger until a GC pass
        if dev.type == "cuda":
            torch.cuda.empty_cache()
