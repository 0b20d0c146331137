"""Text embedder: parity with the reference Qwen3Embedder on a tiny random Qwen3 (fixture), and its errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from helpers import FIXTURES, load_fixture, rel_l2

from mofo_core.encoders.text_encoder import QwenTextEmbedder
from mofo_core.errors import PromptTooLongError


@pytest.fixture(scope="module")
def embedder():
    return QwenTextEmbedder.from_pretrained(FIXTURES / "tiny_qwen3", dtype=torch.float32)


def test_matches_reference_embedder(embedder):
    io, meta = load_fixture("text_io.safetensors")
    prompts = meta["prompts"]
    assert len(prompts) == 3 and "" in prompts
    got = embedder.encode(prompts)
    assert got.shape == io["embeddings"].shape == (3, 512, 48)
    assert got.dtype == torch.float32
    assert rel_l2(got, io["embeddings"]) <= 1e-5
    assert rel_l2(embedder.encode(""), io["null"]) <= 1e-5  # the null conditioning is the encoded ""


def test_padding_is_right_side_with_pad_id(embedder):
    ids, mask = embedder.tokenize(["hi"])
    n = int(mask.sum())
    assert ids.shape == (1, 512) and n == len(embedder.tokenizer(embedder.format("hi"))["input_ids"])
    assert torch.all(ids[0, n:] == embedder.pad_id) and torch.all(mask[0, n:] == 0)
    assert embedder.pad_id == embedder.tokenizer.convert_tokens_to_ids("<|endoftext|>")


def test_long_prompt_is_a_clear_error_unless_truncation_is_asked(embedder):
    long = "x" * 600  # one token per byte in the tiny tokenizer
    with pytest.raises(PromptTooLongError, match=r"prompt 0 is \d+ tokens .* reads 512"):
        embedder.encode(long)
    ids, mask = embedder.tokenize([long], truncate=True)
    assert int(mask.sum()) == 512
    full = embedder.tokenizer(embedder.format(long))["input_ids"]
    assert ids[0].tolist() == full[:512]  # the reference's right truncation
    assert embedder.encode(long, truncate=True).shape == (1, 512, 48)


def test_release_frees_and_refuses_further_use(tmp_path):
    import weakref

    e = QwenTextEmbedder.from_pretrained(FIXTURES / "tiny_qwen3", dtype=torch.float32)
    alive = weakref.ref(e.model)
    e.release()
    assert alive() is None  # really freed, not waiting for a GC pass (transformers models hold cycles)
    with pytest.raises(RuntimeError, match="released, or tokenizer only"):
        e.encode("a")


def test_wrong_model_type_and_incomplete_weights_are_errors(tmp_path):
    d = tmp_path / "te"
    shutil.copytree(FIXTURES / "tiny_qwen3", d)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 12, "layer_types": cfg["layer_types"][:12]}))
    with pytest.raises(ValueError, match="hidden state 27 is needed"):
        QwenTextEmbedder.from_pretrained(d)
    from safetensors.torch import load_file, save_file

    (d / "config.json").write_text(json.dumps(cfg))
    sd = load_file(d / "model.safetensors")
    save_file({k: v for k, v in sd.items() if "layers.3." not in k}, d / "model.safetensors")
    with pytest.raises(ValueError, match="11 missing keys: layers.3.input_layernorm"):
        QwenTextEmbedder.from_pretrained(d)


@pytest.mark.parametrize(
    "damage,message",
    [
        ("truncate", "truncated"),
        ("bomb", "does not fit the file"),
        ("misshape", "wrong shapes: embed_tokens.weight"),
        ("int_weights", "dtype the Qwen3 text encoder cannot hold"),
        ("config_list", "expected a JSON object"),
        ("config_invalid", "not a readable JSON file"),
        ("config_hidden", "hidden_size"),
        ("pickle_only", r"no \.safetensors weights \(only pickle files: \['pytorch_model.bin'\]\)"),
    ],
)
def test_damaged_text_encoder_is_one_checkpoint_error_before_loading(tmp_path, damage, message):
    from safetensors.torch import load_file, save_file

    from mofo_core.encoders.text_encoder import check_text_encoder_files
    from mofo_core.errors import CheckpointError

    d = tmp_path / "te"
    shutil.copytree(FIXTURES / "tiny_qwen3", d)
    st, cfg = d / "model.safetensors", d / "config.json"
    if damage == "truncate":
        st.write_bytes(st.read_bytes()[:-100])
    elif damage == "bomb":
        st.write_bytes((2**62).to_bytes(8, "little") + b"{}")  # a header "length" of 4 EiB
    elif damage in ("misshape", "int_weights"):
        sd = load_file(st)
        key = next(k for k in sd if k.endswith("embed_tokens.weight"))
        sd[key] = sd[key][:, :-1].contiguous() if damage == "misshape" else sd[key].to(torch.int32)
        save_file(sd, st)
    elif damage == "config_list":
        cfg.write_text("[1, 2]")
    elif damage == "config_invalid":
        cfg.write_text("{not json")
    elif damage == "config_hidden":
        cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "hidden_size": "big"}))
    elif damage == "pickle_only":
        st.rename(d / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=message):
        check_text_encoder_files(d)


def test_pickle_beside_safetensors_is_never_loaded(tmp_path, monkeypatch):
    """transformers would prefer pytorch_model.bin in some versions; use_safetensors=True keeps to safetensors."""
    d = tmp_path / "te"
    shutil.copytree(FIXTURES / "tiny_qwen3", d)
    (d / "pytorch_model.bin").write_bytes(b"not a pickle; loading it would fail loudly")
    import pickle

    def no_pickle(*a, **k):
        raise AssertionError("a pickle was opened")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    e = QwenTextEmbedder.from_pretrained(d, dtype=torch.float32)
    assert e.encode("a cat").shape[1] == 512


def test_bf16_default_is_close_to_fp32(embedder):
    e16 = QwenTextEmbedder.from_pretrained(FIXTURES / "tiny_qwen3")
    assert next(e16.model.parameters()).dtype == torch.bfloat16
    a, b = e16.encode("a cat"), embedder.encode("a cat")
    assert a.dtype == torch.float32 and rel_l2(a, b) < 0.1
