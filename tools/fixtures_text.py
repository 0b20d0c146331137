"""Text-embedder parity fixture: the reference `Qwen3Embedder` run on a tiny random Qwen3 + byte tokenizer.

    python tools/fixtures_text.py --ref /path/to/modality-forcing [--out tests/fixtures]

The tiny model directory (an input, written to <out>/tiny_qwen3) is built with mofo_core.app.tiny_assets; the
expected embeddings come from the reference's own embedder alone. Needs `accelerate` (the reference loads
with device_map).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

PROMPTS = ["a cat on a mat", "", "A warm kitchen, soft morning light. Café 東京 — 3 chairs!"]


def make(ref_path: Path, out_dir: Path) -> None:
    sys.path.insert(0, str(Path(ref_path).resolve()))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from flux_rgbd.text_encoder import Qwen3Embedder

    from mofo_core.app.tiny_assets import build_tiny_qwen3

    model_dir = build_tiny_qwen3(out_dir / "tiny_qwen3", seed=5)
    (model_dir / "generation_config.json").unlink(missing_ok=True)
    emb = Qwen3Embedder(str(model_dir), device="cpu").eval()
    with torch.inference_mode():
        out = emb.forward(PROMPTS).float()
        null = emb.forward([""]).float()
    save_file({"embeddings": out.contiguous(), "null": null.contiguous()}, str(out_dir / "text_io.safetensors"),
              metadata={"prompts": json.dumps(PROMPTS), "pad_id": json.dumps(emb._pad_id)})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
    a = ap.parse_args()
    make(Path(a.ref), Path(a.out))
