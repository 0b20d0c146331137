"""Model-file resolution up to the network boundary: local folders, the Hugging Face cache offline, errors."""

from __future__ import annotations

import pytest

from mofo_core.weights.download import (
    AE_FILES,
    DIT_FILES,
    WeightsNotFoundError,
    download_files,
    resolve_model_files,
    resolve_text_encoder,
)


def _fake_cache(cache, repo, files, rev="0123456789abcdef0123456789abcdef01234567"):
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/<file>}."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(rev)
    snap = root / "snapshots" / rev
    snap.mkdir(parents=True)
    for f in files:
        (snap / f).write_bytes(b"x")
    return snap


def test_local_folder_with_all_files(tmp_path):
    for f in DIT_FILES + AE_FILES:
        (tmp_path / f).write_bytes(b"x")
    found = resolve_model_files(str(tmp_path))
    assert set(found) == set(DIT_FILES + AE_FILES) and all(p.parent == tmp_path for p in found.values())


def test_local_folder_missing_files_lists_them_and_where_from(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(WeightsNotFoundError, match=r"lacks config.json, ae_encoder.safetensors, ae_decoder"):
        resolve_model_files(str(tmp_path))


def test_offline_reads_the_hf_cache(tmp_path):
    snap = _fake_cache(tmp_path, "bartduis/modality_forcing", DIT_FILES + AE_FILES)
    found = resolve_model_files("bartduis/modality_forcing", offline=True, cache_dir=tmp_path)
    assert found["model.safetensors"] == snap / "model.safetensors"


def test_offline_with_files_missing_from_the_cache(tmp_path):
    _fake_cache(tmp_path, "bartduis/modality_forcing", ["config.json"])
    with pytest.raises(WeightsNotFoundError, match="offline mode is on .* Put .* into one folder"):
        resolve_model_files("bartduis/modality_forcing", offline=True, cache_dir=tmp_path)


def test_offline_env_variable_is_honoured(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotFoundError, match="offline"):
        resolve_model_files("bartduis/modality_forcing", cache_dir=tmp_path)


def test_text_encoder_folder_and_cache(tmp_path):
    snap = _fake_cache(tmp_path / "c", "Qwen/Qwen3-8B", ["config.json", "tokenizer_config.json", "model.safetensors"])
    assert resolve_text_encoder("Qwen/Qwen3-8B", offline=True, cache_dir=tmp_path / "c") == snap
    assert resolve_text_encoder(str(snap)) == snap
    with pytest.raises(WeightsNotFoundError, match="incomplete"):
        resolve_text_encoder(str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="not in the Hugging Face cache"):
        resolve_text_encoder("Qwen/Qwen3-8B", offline=True, cache_dir=tmp_path / "empty")


def test_download_node_path_offline_keeps_present_files_and_explains(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WeightsNotFoundError, match=r"offline mode is on and model.safetensors are not in"):
        download_files("bartduis/modality_forcing", ["config.json", "model.safetensors"], tmp_path, offline=True)
    (tmp_path / "model.safetensors").write_bytes(b"x")
    got = download_files("bartduis/modality_forcing", ["config.json", "model.safetensors"], tmp_path, offline=True)
    assert got["model.safetensors"] == tmp_path / "model.safetensors"
