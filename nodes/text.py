"""Prompt -> CONDITIONING through ComfyUI's own Qwen3-8B text encoder, in the reference's 512-token form."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import comfy.model_management as mm
import folder_paths
import torch
from comfy_api.latest import io

from ..mofo_core import TEXT_TOKENS, PromptTooLongError, QwenTextEmbedder
from .messages import shows_warnings
from .runtime import patcher_class
from .types import MofoTextEncoder, check_conditioning, node_schema

log = logging.getLogger(__name__)
TOO_LONG = ["truncate", "error"]


class MofoTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoTextEncode",
            display_name="Mofo Text Encode",
            description="Encodes a prompt into exactly 512 tokens of Qwen3-8B features as the Modality Forcing "
            "reference does. Connect ComfyUI's CLIPLoader (qwen_3_8b.safetensors, type flux2) or a Mofo Text Encoder "
            "Loader (transformers, reference-exact bf16 path). For the negative use an empty prompt: the model's "
            "unconditional is the encoded empty prompt, not zeros.",
            inputs=[
                io.String.Input("text", multiline=True, dynamic_prompts=True,
                                tooltip=f"the prompt ({TEXT_TOKENS} Qwen3 tokens are read); empty for the negative"),
                io.Clip.Input("clip", optional=True,
                              tooltip="CLIPLoader with qwen_3_8b.safetensors (or _fp8mixed), type flux2"),
                MofoTextEncoder.Input("text_encoder", optional=True,
                                      tooltip="or a Mofo Text Encoder Loader (transformers); connect exactly one"),
                io.Combo.Input("too_long", options=TOO_LONG, default=TOO_LONG[0], optional=True,
                               tooltip=f"a prompt over {TEXT_TOKENS} tokens: truncate drops the end as the "
                               "reference does (a warning on the node says how many tokens); error stops instead"),
            ],
            outputs=[io.Conditioning.Output()],
        )

    @classmethod
    @shows_warnings
    def execute(cls, text: str, clip=None, text_encoder=None, too_long: str = TOO_LONG[0]) -> io.NodeOutput:
        if (clip is None) == (text_encoder is None):
            raise ValueError("connect exactly one text encoder: CLIPLoader (qwen_3_8b.safetensors, type flux2) or "
                             "Mofo Text Encoder Loader")
        if too_long not in TOO_LONG:
            raise ValueError(f"too_long must be one of {TOO_LONG}, got {too_long!r}")
        truncate = too_long == "truncate"
        if text_encoder is not None:
            return io.NodeOutput(encode_with_transformers(text_encoder, text, truncate=truncate))
        cond = clip.encode_from_tokens_scheduled(clip.tokenize(text))
        t = check_conditioning(cond, "the text encoder's output")
        if t.shape[1] > TEXT_TOKENS:
            if not truncate:
                raise PromptTooLongError(f"the prompt is {t.shape[1]} tokens; the model reads {TEXT_TOKENS}. Shorten "
                                         "it, or set too_long to truncate (drops the end, as the reference does)")
            log.warning("prompt is %d tokens; the model reads %d: the last %d are dropped (as the reference does)",
                        t.shape[1], TEXT_TOKENS, t.shape[1] - TEXT_TOKENS)
            cond = [[t[:, :TEXT_TOKENS], {**cond[0][1], "attention_mask": _cut(cond[0][1].get("attention_mask"))}]]
        return io.NodeOutput(cond)


class MofoTextEncoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoTextEncoderLoader",
            display_name="Mofo Text Encoder Loader (transformers)",
            description="Loads a Qwen3-8B folder in Hugging Face format (config.json, tokenizer, *.safetensors) from "
            "models/text_encoders with transformers: the reference's exact text path, and the one that works on "
            "ComfyUI versions without native Qwen3-8B. Only the first 27 layers are loaded.",
            inputs=[io.Combo.Input("folder", options=_hf_folders(),
                                   tooltip="a Qwen3-8B folder (config.json, tokenizer, *.safetensors) under "
                                   "models/text_encoders"),
                    io.Combo.Input("dtype", options=["bf16", "fp32"], default="bf16",
                                   tooltip="bf16 = the reference's; fp32 for CPU checks (2x the memory)")],
            outputs=[MofoTextEncoder.Output(display_name="text_encoder")],
        )

    @classmethod
    @shows_warnings
    def execute(cls, folder: str, dtype: str) -> io.NodeOutput:
        path = next((p for p in _roots() if (p / folder / "config.json").is_file()), None)
        if path is None:
            raise ValueError(f"{folder} is not a Hugging Face model folder under models/text_encoders")
        te = QwenTextEmbedder.from_pretrained(path / folder, device=mm.text_encoder_offload_device(),
                                              dtype=torch.bfloat16 if dtype == "bf16" else torch.float32)
        # a plain container: ModelPatcher sets `.device` on what it manages, a read-only property on HF models
        holder = torch.nn.ModuleDict({"qwen3": te.model})
        patcher = patcher_class()(holder, load_device=mm.text_encoder_device(),
                                  offload_device=mm.text_encoder_offload_device())
        return io.NodeOutput(TextEncoderHandle(te, patcher))


@dataclass
class TextEncoderHandle:
    embedder: QwenTextEmbedder
    patcher: object  # ModelPatcher: ComfyUI offloads the encoder before the DiT loads


def encode_with_transformers(handle: TextEncoderHandle, text: str, truncate: bool = True):
    mm.load_models_gpu([handle.patcher])
    try:
        ctx = handle.embedder.encode([text])
    except PromptTooLongError as e:
        if not truncate:
            raise PromptTooLongError(f"the prompt is {e.tokens} tokens with the chat template; the model reads "
                                     f"{e.limit}. Shorten it, or set too_long to truncate (drops the end, as the "
                                     "reference does)", tokens=e.tokens, limit=e.limit) from e
        log.warning("prompt is %d tokens with the chat template; the model reads %d: the last %d are dropped (as the "
                    "reference does)", e.tokens, e.limit, e.tokens - e.limit)
        ctx = handle.embedder.encode([text], truncate=True)
    return [[ctx.to(mm.intermediate_device()), {"pooled_output": None}]]


def _roots():
    from pathlib import Path

    return [Path(p) for p in folder_paths.get_folder_paths("text_encoders")]


def _hf_folders() -> list[str]:
    out = []
    for root in _roots():
        if root.is_dir():
            out += sorted(d.name for d in root.iterdir() if (d / "config.json").is_file())
    return out


def _cut(mask):
    return None if mask is None else mask[..., :TEXT_TOKENS]
