"""A tiny random MoGe v2 checkpoint that ComfyUI's native Load MoGe Model reads (its config is read off the shapes).

    PYTHONPATH=ComfyUI python tiny_moge.py OUT.safetensors      # with ComfyUI's Python

Random weights: its depth and mask are noise, but they flow through Run MoGe Inference exactly as a real model's do
(MOGE_GEOMETRY with inf where masked, a mask, intrinsics), which is what the pack's alignment node consumes.
"""

from __future__ import annotations

import sys

import torch


def build(path: str) -> None:
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # as the test server runs (--cpu); also where no GPU driver exists
    import comfy.ops
    from comfy.ldm.moge.model import MoGeModelV2
    from safetensors.torch import save_file

    torch.manual_seed(0)
    levels = [16, 8, 8, 8, 8]
    plain = {"resamplers": ["bilinear"] * 4, "num_res_blocks": [0] * 5, "res_block_in_norm": "none",
             "res_block_hidden_norm": "none"}
    model = MoGeModelV2(
        encoder={"backbone": {"hidden_size": 64, "num_attention_heads": 1, "num_hidden_layers": 4,
                              "layer_norm_eps": 1e-6, "use_swiglu_ffn": False},
                 "intermediate_layers": [0, 1, 2, 3], "dim_out": 16},
        neck={"dim_in": [16 + 2, 2, 2, 2, 2], "dim_res_blocks": levels, "dim_out": [None] * 5, **plain},
        points_head={"dim_in": levels, "dim_res_blocks": levels, "dim_out": [None] * 4 + [3], **plain},
        mask_head={"dim_in": levels, "dim_res_blocks": levels, "dim_out": [None] * 4 + [1], **plain},
        scale_head={"dims": [64, 16, 1]},
        operations=comfy.ops.manual_cast,
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.fill_(0.0 if name.endswith("bias") else 1.0)
            else:
                p.normal_(0.0, 0.02)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)


if __name__ == "__main__":
    build(sys.argv[1])
