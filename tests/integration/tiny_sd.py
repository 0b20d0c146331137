"""Tiny random-weight SD 1.5 checkpoint + SD 1.5 ControlNet for ComfyUI integration tests.

``write_tiny_sd15`` writes two small safetensors files:

* a checkpoint that ComfyUI's ``CheckpointLoaderSimple`` loads as an SD 1.5 model (MODEL + CLIP + VAE);
* a ControlNet that ``ControlNetLoader`` loads as an SD 1.5 ControlNet (e.g. a depth ControlNet: ComfyUI does
  not distinguish depth/canny/... ControlNets, they are all the same ``cldm.ControlNet`` with a 3-channel hint).

The weights are random (seeded), so the images are noise; the point is to exercise the real load / encode /
sample / decode path on CPU in seconds. Only torch and safetensors are used (no ComfyUI import).

Everything below was checked against a ComfyUI v0.29.0 checkout (commit 4f874c5e); file:line references are to
that checkout.

How ComfyUI recognises the files
--------------------------------
Checkpoint (comfy/sd.py:1887 ``load_checkpoint_guess_config`` -> :1954 ``load_state_dict_guess_config``):

* comfy/model_detection.py:1242 ``unet_prefix_from_state_dict``: the UNet prefix is the candidate with the most
  (and > 5) keys, here ``model.diffusion_model.``.
* comfy/model_detection.py:1087-1215 ``detect_unet_config`` (ldm UNet branch) infers from the keys/shapes:
  ``model_channels``/``in_channels`` from ``input_blocks.0.0.weight``, ``out_channels`` from ``out.2.weight``,
  ``num_res_blocks``/``channel_mult`` by walking ``input_blocks.N`` (a level ends at a ``0.op.weight``
  downsampler; ``channel_mult`` = ``out_layers.3.weight.shape[0] // model_channels``), ``transformer_depth`` /
  ``transformer_depth_output`` by counting ``transformer_blocks.K`` in input/output blocks
  (:29 ``calculate_transformer_depth``), ``context_dim`` from the FIRST input-block transformer's
  ``attn2.to_k.weight.shape[1]`` and ``use_linear_in_transformer`` from ``proj_in.weight.ndim == 2``,
  ``transformer_depth_middle`` = -2 when there are no ``middle_block.*`` keys at all (:1180-1185),
  ``adm_in_channels`` = None without ``label_emb.0.0.weight`` (:1097-1102).
* comfy/supported_models_base.py:57 ``matches`` requires only the keys listed in the model's ``unet_config`` to be
  equal; comfy/supported_models.py:46-53 ``SD15.unet_config`` is context_dim=768, model_channels=320,
  use_linear_in_transformer=False, adm_in_channels=None, use_temporal_attention=False. Everything else
  (channel_mult, num_res_blocks, transformer depths, middle block) is free. The classes tried before SD15
  (supported_models.py:2375-2378: LotusD, Stable_Zero123, SD15_instructpix2pix) need adm_in_channels=4 or
  in_channels=8, so in_channels=4 falls through to SD15.
  Smallest accepted UNet, therefore: ONE level (channel_mult=[1]), ONE res block with ONE transformer block
  (needed: without a transformer ``context_dim`` is None and nothing matches), no transformers in the output
  blocks, and no middle block. comfy/ldm/modules/diffusionmodules/openaimodel.py:727-750 leaves
  ``middle_block = None`` for transformer_depth_middle == -2 and :894 skips it in forward. With a single level
  there is no down/upsampling, so the 8x8 latent of a 64x64 image is fine. Detected config:
  channel_mult=[1], num_res_blocks=[1], transformer_depth=[1], transformer_depth_output=[0, 0],
  transformer_depth_middle=-2 -> SD15.
* CLIP: comfy/supported_models.py:63-78 ``SD15.process_clip_state_dict`` maps ``cond_stage_model.`` ->
  ``clip_l.``; comfy/sd.py:2036-2043 builds the (fixed, comfy/sd1_clip_config.json) 12-layer ViT-L/14 text
  encoder as soon as at least one such key exists (with none it logs "no CLIP/text encoder weights" and returns
  CLIP=None, which CLIPTextEncode rejects). comfy/sd.py:276-280 loads non-strictly and only *logs*
  "clip missing: [...]" for absent keys. The shapes are fixed, so a narrower CLIP is impossible; the full fp16
  CLIP would be ~246 MB. See ``_clip`` for what we store and why.
* VAE: comfy/sd.py:2009 strips ``first_stage_model.``; comfy/sd.py:583-645 (``VAE.__init__``, default SD1
  branch) uses the SD ddconfig (ch=128, ch_mult=[1,2,4,4], num_res_blocks=2, :614) for the encoder but derives
  the DECODER width from ``decoder.conv_in.weight.shape[0] // ch_mult[-1]`` (:633-638 ``decoder_ddconfig``), so a
  narrow decoder (ch=32, the minimum for its GroupNorm(32) layers) is accepted. ``decoder.up.3.upsample.conv.weight``
  must exist or it is taken for the x4-upscaler VAE (:616-619). ``post_quant_conv.weight`` selects AutoencoderKL
  (:640). comfy/sd.py:973-975 loads non-strictly and only logs "Missing VAE keys" - the encoder (unused by
  VAEDecode and by ControlNetApplyAdvanced without a ``vae`` input) is therefore omitted.

ControlNet (comfy/controlnet.py:886 ``load_controlnet`` -> :731 ``load_controlnet_state_dict``):

* ``control_model.zero_convs.0.0.weight`` marks the original (.pth-style) format with prefix ``control_model.``
  (:810-815); the config comes from the same ``detect_unet_config`` + ``matches`` as above (:825-828; it must match
  SD15 to get num_heads=8, otherwise the BASE fallback has neither num_heads nor num_head_channels and cldm
  asserts), ``hint_channels`` from ``input_hint_block.0.weight.shape[1]`` (:850). comfy/cldm/cldm.py:60-318
  builds input blocks, one zero conv per input block (:183, :380), the fixed ``input_hint_block`` (:185-201,
  3->16->16->32->32->96->96->256->model_channels, 3 stride-2 convs = /8) and ALWAYS a middle block ResBlock
  (:288-317, + ``middle_block_out`` :318), so ``middle_block.0.*`` is included (detected as
  transformer_depth_middle=-1, i.e. ResBlock only; without it that ResBlock would be left uninitialised). The
  ControlNet mirrors the tiny UNet (same single level) so its outputs line up with the UNet's blocks
  (openaimodel.py:368 ``apply_control`` pops from the end, :907 for the skip connections).
  Missing/unexpected keys are only logged (controlnet.py:876-880); here there are none.

dtypes: all tensors are stored as fp16 (with ``full_clip=True`` the zero CLIP matrices as fp8). ComfyUI casts on
load: on CPU it holds and runs the UNet, ControlNet and VAE in fp32 and holds the text encoder in fp16
(comfy/model_management.py:1204-1205), computing it in fp32.

Observed on CPU (2 cores): the graph CheckpointLoaderSimple -> CLIPTextEncode x2 -> ControlNetLoader ->
ControlNetApplyAdvanced -> EmptyLatentImage 64x64 -> KSampler (2 steps, euler, normal) -> VAEDecode -> SaveImage
runs in ~1-7 s including loading; ComfyUI logs exactly two warnings, "Missing VAE keys [encoder.*]" and
"clip missing: [...]" (the omitted CLIP matrices; not logged with ``full_clip=True``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

__all__ = ["write_tiny_sd15"]

_MODEL_CHANNELS = 320  # must equal SD15.unet_config["model_channels"] (supported_models.py:49)
_TIME_EMBED = _MODEL_CHANNELS * 4  # openaimodel.py:503 / cldm.py:152 time_embed_dim
_CONTEXT_DIM = 768  # must equal SD15.unet_config["context_dim"] (supported_models.py:48)
_LATENT_CHANNELS = 4
_VAE_DECODER_CH = 32  # GroupNorm(32, C) needs C % 32 == 0; default SD1 VAE has 128
_VAE_CH_MULT = (1, 2, 4, 4)  # fixed SD1 ddconfig (sd.py:614); only `ch` of the decoder is inferred
_VAE_NUM_RES_BLOCKS = 2  # fixed SD1 ddconfig; the decoder has num_res_blocks + 1 blocks per level

_CLIP_PREFIX = "cond_stage_model.transformer.text_model."
_CLIP_LAYERS = 12  # comfy/sd1_clip_config.json num_hidden_layers
_CLIP_WIDTH = 768  # hidden_size
_CLIP_POSITIONS = 77  # max_position_embeddings


class _Builder:
    """Collects tensors; weights ~ N(0, (gain / sqrt(fan_in))^2), biases 0, norms weight 1 / bias 0."""

    def __init__(self, seed: int, dtype: torch.dtype = torch.float16):
        self.gen = torch.Generator().manual_seed(seed)
        self.dtype = dtype
        self.sd: dict[str, torch.Tensor] = {}

    def _put(self, key: str, t: torch.Tensor, dtype: torch.dtype | None = None) -> None:
        assert key not in self.sd, key
        self.sd[key] = t.to(dtype or self.dtype).contiguous()

    def weight(self, key: str, shape: tuple[int, ...], gain: float = 1.0) -> None:
        fan_in = 1
        for s in shape[1:]:
            fan_in *= s
        self._put(key, torch.randn(shape, generator=self.gen) * (gain / fan_in**0.5))

    def normal(self, key: str, shape: tuple[int, ...], std: float) -> None:
        self._put(key, torch.randn(shape, generator=self.gen) * std)

    def const(self, key: str, shape: tuple[int, ...], value: float, dtype: torch.dtype | None = None) -> None:
        self._put(key, torch.full(shape, float(value)), dtype)

    def linear(self, p: str, cin: int, cout: int, bias: bool = True, gain: float = 1.0) -> None:
        self.weight(p + "weight", (cout, cin), gain)
        if bias:
            self.const(p + "bias", (cout,), 0.0)

    def conv(self, p: str, cin: int, cout: int, k: int, gain: float = 1.0) -> None:
        self.weight(p + "weight", (cout, cin, k, k), gain)
        self.const(p + "bias", (cout,), 0.0)

    def norm(self, p: str, ch: int) -> None:  # GroupNorm / LayerNorm
        self.const(p + "weight", (ch,), 1.0)
        self.const(p + "bias", (ch,), 0.0)

    # --- ldm UNet pieces (comfy/ldm/modules/diffusionmodules/openaimodel.py, attention.py) ---

    def time_embed(self, p: str) -> None:
        # openaimodel.py:504-508: Linear(320, 1280), SiLU, Linear(1280, 1280)
        self.linear(p + "time_embed.0.", _MODEL_CHANNELS, _TIME_EMBED)
        self.linear(p + "time_embed.2.", _TIME_EMBED, _TIME_EMBED)

    def resblock(self, p: str, cin: int, cout: int) -> None:
        # openaimodel.py ResBlock: in_layers = [GroupNorm, SiLU, conv3x3], emb_layers = [SiLU, Linear],
        # out_layers = [GroupNorm, SiLU, Dropout, conv3x3], skip_connection = conv1x1 iff cin != cout.
        self.norm(p + "in_layers.0.", cin)
        self.conv(p + "in_layers.2.", cin, cout, 3)
        self.linear(p + "emb_layers.1.", _TIME_EMBED, cout)
        self.norm(p + "out_layers.0.", cout)
        self.conv(p + "out_layers.3.", cout, cout, 3, gain=0.5)
        if cin != cout:
            self.conv(p + "skip_connection.", cin, cout, 1)

    def spatial_transformer(self, p: str, ch: int) -> None:
        # attention.py SpatialTransformer(use_linear=False): GroupNorm, conv1x1 proj_in, BasicTransformerBlock
        # (attn1 self-attn, attn2 cross-attn with context_dim, GEGLU ff with inner dim 4*ch, 3 LayerNorms),
        # conv1x1 proj_out. to_q/to_k/to_v have no bias.
        self.norm(p + "norm.", ch)
        self.conv(p + "proj_in.", ch, ch, 1)  # 4-D weight => use_linear_in_transformer False
        b = p + "transformer_blocks.0."
        for attn, kv_dim in (("attn1.", ch), ("attn2.", _CONTEXT_DIM)):
            self.linear(b + attn + "to_q.", ch, ch, bias=False)
            self.linear(b + attn + "to_k.", kv_dim, ch, bias=False)  # attn2.to_k.shape[1] => context_dim
            self.linear(b + attn + "to_v.", kv_dim, ch, bias=False)
            self.linear(b + attn + "to_out.0.", ch, ch)
        self.linear(b + "ff.net.0.proj.", ch, ch * 4 * 2)  # GEGLU: Linear(ch, 2 * 4ch)
        self.linear(b + "ff.net.2.", ch * 4, ch)
        for n in ("norm1.", "norm2.", "norm3."):
            self.norm(b + n, ch)
        self.conv(p + "proj_out.", ch, ch, 1, gain=0.5)


def _unet(b: _Builder, p: str = "model.diffusion_model.") -> None:
    """Detected as SD15 with channel_mult=[1], num_res_blocks=[1], transformer_depth=[1],
    transformer_depth_output=[0, 0], transformer_depth_middle=-2 (no middle block)."""
    c = _MODEL_CHANNELS
    b.time_embed(p)
    b.conv(p + "input_blocks.0.0.", _LATENT_CHANNELS, c, 3)
    b.resblock(p + "input_blocks.1.0.", c, c)
    b.spatial_transformer(p + "input_blocks.1.1.", c)
    # openaimodel.py:752-820: level 0 has num_res_blocks + 1 = 2 output blocks, each a ResBlock over
    # concat(h, skip) = 640 channels; no transformer (transformer_depth_output 0), no Upsample (last level).
    b.resblock(p + "output_blocks.0.0.", 2 * c, c)
    b.resblock(p + "output_blocks.1.0.", 2 * c, c)
    b.norm(p + "out.0.", c)
    b.conv(p + "out.2.", c, _LATENT_CHANNELS, 3, gain=0.5)  # out.2.weight.shape[0] => out_channels


def _vae_decoder(b: _Builder, p: str = "first_stage_model.") -> None:
    """Narrow AutoencoderKL decoder (ldm Decoder, comfy/ldm/modules/diffusionmodules/model.py:685)."""
    ch = _VAE_DECODER_CH
    d = p + "decoder."

    def resnet(q: str, cin: int, cout: int) -> None:
        # model.py:174 ResnetBlock (temb_channels=0 => no temb_proj)
        b.norm(q + "norm1.", cin)
        b.conv(q + "conv1.", cin, cout, 3)
        b.norm(q + "norm2.", cout)
        b.conv(q + "conv2.", cout, cout, 3, gain=0.5)
        if cin != cout:
            b.conv(q + "nin_shortcut.", cin, cout, 1)

    # quant_conv belongs to the (omitted) encoder path but is 8x8: include it to keep the warning short.
    b.conv(p + "quant_conv.", 2 * _LATENT_CHANNELS, 2 * _LATENT_CHANNELS, 1)
    b.conv(p + "post_quant_conv.", _LATENT_CHANNELS, _LATENT_CHANNELS, 1)  # => AutoencoderKL (sd.py:640)
    block_in = ch * _VAE_CH_MULT[-1]
    b.conv(d + "conv_in.", _LATENT_CHANNELS, block_in, 3)  # shape[0] // 4 => decoder ch (sd.py:633)
    resnet(d + "mid.block_1.", block_in, block_in)
    b.norm(d + "mid.attn_1.norm.", block_in)
    for n in ("q.", "k.", "v.", "proj_out."):
        b.conv(d + "mid.attn_1." + n, block_in, block_in, 1)
    resnet(d + "mid.block_2.", block_in, block_in)
    for level in reversed(range(len(_VAE_CH_MULT))):
        block_out = ch * _VAE_CH_MULT[level]
        for i in range(_VAE_NUM_RES_BLOCKS + 1):
            resnet(d + f"up.{level}.block.{i}.", block_in, block_out)
            block_in = block_out
        if level != 0:
            # up.3.upsample must exist, else sd.py:616 takes it for the x4-upscaler VAE
            b.conv(d + f"up.{level}.upsample.conv.", block_in, block_in, 3)
    b.norm(d + "norm_out.", block_in)
    b.conv(d + "conv_out.", block_in, 3, 3)


def _clip(b: _Builder, full: bool, p: str = _CLIP_PREFIX) -> None:
    """By default only the small tensors of the SD1 text encoder (~0.18M params, 0.4 MB).

    The architecture is fixed (comfy/sd1_clip.py:94-120 loads comfy/sd1_clip_config.json), so nothing can be made
    narrower; the full encoder is 123M params (246 MB in fp16). ComfyUI tolerates missing CLIP keys
    (comfy/sd.py:276-280: a non-strict load, a "clip missing" warning), so the big matrices (token_embedding,
    q/k/v/out_proj and fc1/fc2 weights) are left out. ComfyUI's ops never initialise weights
    (comfy/ops.py:504 etc.: disable_weight_init.*.reset_parameters returns None), so those stay whatever
    ``torch.empty`` gave them (on Linux in practice zero pages for the large ones).

    To make the output independent of those uninitialised values, every LayerNorm weight and every bias in
    the encoder layers is 0: each layer then adds W @ 0 = 0 to the residual stream (for any finite W), and the
    final LayerNorm (weight 0, random bias) maps whatever reaches it to its bias. The conditioning is therefore
    a fixed, prompt-independent 77x768 tensor (the bias repeated), determined by ``seed`` alone.
    (comfy/clip_model.py:95-107 CLIPLayer is pre-LN: x += attn(ln1(x)); x += mlp(ln2(x)); :182 final LN;
    sd1_clip.py:281-282 SD1 uses that last, layer-normed hidden state.)

    Caveat: "for any FINITE W". 0 * NaN = NaN, so if ``torch.empty`` ever hands ComfyUI recycled heap memory
    holding NaN/Inf bit patterns, the conditioning (and the image) becomes NaN. The graph still completes
    (SaveImage writes a black image with a numpy "invalid value encountered in cast" warning). In fresh
    ComfyUI processes on Linux/glibc the missing tensors came out all-zero in every run we made, but if a test
    must not depend on the allocator, pass ``full_clip=True``: then every tensor ComfyUI would report missing is
    written too, as fp8 zeros (ComfyUI copies them into its fp16 text encoder; their values do not matter
    given the zeroed LayerNorms), at the cost of ~123 MB more on disk.
    """
    w = _CLIP_WIDTH
    b.normal(p + "embeddings.position_embedding.weight", (_CLIP_POSITIONS, w), std=1.0)
    for i in range(_CLIP_LAYERS):
        q = p + f"encoder.layers.{i}."
        b.const(q + "layer_norm1.weight", (w,), 0.0)
        b.const(q + "layer_norm1.bias", (w,), 0.0)
        b.const(q + "layer_norm2.weight", (w,), 0.0)
        b.const(q + "layer_norm2.bias", (w,), 0.0)
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            b.const(q + f"self_attn.{n}.bias", (w,), 0.0)
        b.const(q + "mlp.fc1.bias", (4 * w,), 0.0)
        b.const(q + "mlp.fc2.bias", (w,), 0.0)
    b.const(p + "final_layer_norm.weight", (w,), 0.0)
    b.normal(p + "final_layer_norm.bias", (w,), std=1.0)
    if full:
        z = torch.float8_e4m3fn
        b.const(p + "embeddings.token_embedding.weight", (49408, w), 0.0, z)  # vocab_size 49408
        for i in range(_CLIP_LAYERS):
            q = p + f"encoder.layers.{i}."
            for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
                b.const(q + f"self_attn.{n}.weight", (w, w), 0.0, z)
            b.const(q + "mlp.fc1.weight", (4 * w, w), 0.0, z)
            b.const(q + "mlp.fc2.weight", (w, 4 * w), 0.0, z)
        # text_projection (pooled output, unused by SD1.5) and logit_scale (sd1_clip.py:131 sets it) are absent
        # from real SD1.5 checkpoints too; comfy/sd.py:278-282 logs them at debug level only.


def _controlnet(b: _Builder, p: str = "control_model.") -> None:
    """SD1.5 ControlNet (comfy/cldm/cldm.py) mirroring the tiny UNet: one level, one ResBlock+transformer."""
    c = _MODEL_CHANNELS
    b.time_embed(p)
    # cldm.py:185-201 input_hint_block: 8 convs (indices 0,2,...,14; SiLU in between), hint_channels = 3 (RGB,
    # e.g. a depth map image), three stride-2 convs => /8 = latent resolution.
    hint = [3, 16, 16, 32, 32, 96, 96, 256, c]
    for j in range(len(hint) - 1):
        b.conv(p + f"input_hint_block.{2 * j}.", hint[j], hint[j + 1], 3)
    b.conv(p + "input_blocks.0.0.", _LATENT_CHANNELS, c, 3)
    b.resblock(p + "input_blocks.1.0.", c, c)
    b.spatial_transformer(p + "input_blocks.1.1.", c)
    # one 1x1 zero conv per input block (cldm.py:183, :380-381); small, not zero, so the control is visible
    b.conv(p + "zero_convs.0.0.", c, c, 1, gain=0.1)
    b.conv(p + "zero_convs.1.0.", c, c, 1, gain=0.1)
    # cldm.py:288-318: the middle block always has at least a ResBlock, then middle_block_out
    b.resblock(p + "middle_block.0.", c, c)
    b.conv(p + "middle_block_out.0.", c, c, 1, gain=0.1)


def write_tiny_sd15(checkpoint_path: Path, controlnet_path: Path, seed: int = 0, *, full_clip: bool = False) -> None:
    """Write a tiny random SD 1.5 checkpoint and a tiny SD 1.5 ControlNet as fp16 safetensors.

    ``checkpoint_path`` goes in ComfyUI's models/checkpoints, ``controlnet_path`` in models/controlnet; both
    should end in ``.safetensors`` (ComfyUI picks the loader by extension, comfy/utils.py:126). Sizes: checkpoint
    ~34 MB (~157 MB with ``full_clip=True``, see ``_clip``), ControlNet ~21 MB. Byte-identical output for a given
    ``seed``.
    """
    checkpoint_path = Path(checkpoint_path)
    controlnet_path = Path(controlnet_path)

    ckpt = _Builder(seed)
    _unet(ckpt)
    _vae_decoder(ckpt)
    _clip(ckpt, full_clip)

    cnet = _Builder(seed + 1)
    _controlnet(cnet)

    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    controlnet_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(ckpt.sd, str(checkpoint_path), metadata={"format": "pt"})
    save_file(cnet.sd, str(controlnet_path), metadata={"format": "pt"})
