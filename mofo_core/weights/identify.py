"""What a safetensors file that is not the expected one is, from its tensor names and shapes alone.

A user who picks the wrong file in a loader (an SD 1.5 UNet in Mofo Load Model, a VAE, a LoRA) should read what
the file is and where it belongs, not a list of 900 missing keys. The signatures are the public key layouts of
the families ComfyUI users keep in `models/`:

* LDM / ComfyUI UNets (SD 1.x, 2.x, SDXL): `input_blocks.*`, `middle_block.*`, `output_blocks.*`; the
  cross-attention context width (`...attn2.to_k.weight` has shape (C, context)) is 768 for SD 1.x, 1024 for
  SD 2.x and 2048 for SDXL, which also has `label_emb.*` (CompVis/stability-ai generative-models layouts).
* diffusers UNets: `down_blocks.*` + `mid_block.*` + `time_embedding.*`.
* Full checkpoints: `model.diffusion_model.*` with `first_stage_model.*` (VAE) and `cond_stage_model.*` /
  `conditioner.*` (text encoders).
* FLUX transformers (BFL layout): `double_blocks.*` + `img_in` + `txt_in`; FLUX.2 has no per-block `img_mod`
  but shared `double_stream_modulation_*` weights; Modality Forcing adds the depth stream (`depth_in`,
  `depth_final_layer`).
* SD3 / MMDiT: `joint_blocks.*`; Wan / HunyuanVideo and other video DiTs are named by their own prefixes.
* VAEs: `encoder.*` + `decoder.*` (or one half); text encoders: `*.self_attn.*` / `embed_tokens`;
  LoRAs: `lora_up` / `lora_down` / `lora_A` / `lora_B`; ControlNets: `input_hint_block` / `controlnet_*`.
"""

from __future__ import annotations

from collections.abc import Mapping

Shapes = Mapping[str, tuple[int, ...]]

_UNET_CONTEXT = {768: "a Stable Diffusion 1.x UNet", 1024: "a Stable Diffusion 2.x UNet",
                 2048: "an SDXL UNet"}


def _strip(keys: set[str]) -> tuple[set[str], str]:
    """Keys without a common wrapper prefix, and that prefix."""
    for p in ("model.diffusion_model.", "diffusion_model.", "dit.", "transformer.", "model."):
        if keys and all(k.startswith(p) for k in keys):
            return {k[len(p):] for k in keys}, p
    return keys, ""


def _unet(shapes: Shapes, keys: set[str]) -> str:
    ctx = {s[1] for k, s in shapes.items() if k.endswith("attn2.to_k.weight") and len(s) == 2}
    name = next((_UNET_CONTEXT[c] for c in sorted(ctx) if c in _UNET_CONTEXT), None)
    if name is None:
        name = "an SDXL UNet" if any(k.startswith("label_emb.") for k in keys) else "a Stable Diffusion UNet"
    return name


def identify(shapes: Shapes) -> str | None:
    """A short noun phrase naming the kind of model file ("a Stable Diffusion 1.x UNet"), or None if unknown.

    `shapes` maps tensor names to shapes, as a safetensors header gives them (no tensor data is needed).
    """
    raw = set(shapes)
    if any(k.startswith("first_stage_model.") for k in raw) and any(k.startswith("model.diffusion_model.")
                                                                    for k in raw):
        unet = _unet({k.removeprefix("model.diffusion_model."): s for k, s in shapes.items()}, raw)
        return f"a full checkpoint ({unet.removeprefix('a ').removeprefix('an ')} + VAE + text encoder)"
    keys, prefix = _strip(raw)
    bare = {k[len(prefix):]: s for k, s in shapes.items()} if prefix else shapes
    if any("lora_up" in k or "lora_down" in k or ".lora_A." in k or ".lora_B." in k for k in keys):
        return "a LoRA"
    if any(k.startswith(("input_hint_block.", "controlnet_")) or ".zero_convs." in k for k in keys) or any(
        k.startswith("zero_convs.") for k in keys):
        return "a ControlNet"
    if "depth_in.weight" in keys and "img_in.weight" in keys:
        return "a Modality Forcing DiT"
    if "img_in.weight" in keys and any(k.startswith("double_blocks.") for k in keys):
        if any(k.startswith("double_stream_modulation") for k in keys):
            return "an RGB-only FLUX.2 transformer (e.g. FLUX.2 [dev] / [klein])"
        return "a FLUX.1 transformer"
    if any(k.startswith("joint_blocks.") for k in keys):
        return "an SD3 / MMDiT transformer"
    if any(k.startswith("input_blocks.") for k in keys) and any(k.startswith("middle_block.") for k in keys):
        return _unet(bare, keys)
    if any(k.startswith("down_blocks.") for k in keys) and any(k.startswith("mid_block.") for k in keys):
        return "a diffusers-format UNet or VAE"
    if any(k.startswith(("encoder.", "decoder.")) for k in keys) and any("conv_in" in k for k in keys):
        return "a VAE (autoencoder)"
    if any(".self_attn." in k or k.startswith("embed_tokens") or ".embed_tokens." in k for k in keys):
        return "a language model (text encoder)"
    if any(k.startswith(("text_model.", "transformer.resblocks.")) for k in keys):
        return "a CLIP text encoder"
    if any(k.startswith("blocks.") for k in keys) and any(k.startswith(("patch_embedding.", "text_embedding."))
                                                         for k in keys):
        return "a Wan video transformer"
    return None


# Where each kind of file belongs in ComfyUI, for the error message.
WHERE = {
    "LoRA": "models/loras, loaded with LoraLoader",
    "ControlNet": "models/controlnet, loaded with ControlNetLoader",
    "full checkpoint": "models/checkpoints, loaded with Load Checkpoint",
    "UNet": "models/diffusion_models, loaded with Load Diffusion Model (UNETLoader)",
    "transformer": "models/diffusion_models, loaded with Load Diffusion Model (UNETLoader)",
    "VAE": "models/vae, loaded with Load VAE",
    "text encoder": "models/text_encoders, loaded with Load CLIP",
}


def where_it_belongs(kind: str) -> str | None:
    """'models/loras, loaded with LoraLoader' for 'a LoRA', and so on; None when nothing fits."""
    return next((v for k, v in WHERE.items() if k in kind), None)
