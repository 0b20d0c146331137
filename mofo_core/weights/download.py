"""Where the model files come from: a local directory, or a Hugging Face repo through huggingface_hub.

The release `bartduis/modality_forcing` holds `config.json`, `model.safetensors` (DiT, 24 GB bf16) and
`ae_encoder.safetensors` / `ae_decoder.safetensors` (FLUX.2 autoencoder); the text encoder is
`Qwen/Qwen3-8B`. huggingface_hub gives the cache, resumable downloads and progress bars; offline (the
`offline` argument or `HF_HUB_OFFLINE=1`) only the cache is read. Nothing downloads unless a repo id is
asked for explicitly.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from ..errors import WeightsNotFoundError

log = logging.getLogger(__name__)

RELEASE_REPO = "bartduis/modality_forcing"
DIT_FILES = ("config.json", "model.safetensors")
AE_FILES = ("ae_encoder.safetensors", "ae_decoder.safetensors")
TEXT_ENCODER_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.jinja", "tokenizer*")


def _manual_hint(repo: str, files: Sequence[str], dest: Path | None = None) -> str:
    if dest is not None:
        return (
            f"Download {', '.join(files)} from https://huggingface.co/{repo} by hand into {dest} "
            f"(or, with internet: `hf download {repo} --local-dir {dest}`)."
        )
    return (
        f"Put {', '.join(files)} from https://huggingface.co/{repo} into one folder and pass that folder "
        f"instead of the repo id (or, with internet: `hf download {repo} --local-dir FOLDER`)."
    )


NETWORK_PROBE_TIMEOUT_S = 3.0


def hub_reachable(timeout: float = NETWORK_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face endpoint accepts a TCP connection within `timeout` seconds.

    One quick probe instead of the hub client's retries (~90 s of warnings with no network). With a proxy set
    in the environment the probe cannot tell, so the hub is assumed reachable."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_mode(offline: bool | None) -> tuple[bool, str]:
    """(read the cache only, why) for a hub look-up."""
    from huggingface_hub import constants

    if offline or (offline is None and constants.HF_HUB_OFFLINE):
        return True, "offline mode is on and they are not in the Hugging Face cache"
    if not hub_reachable():
        return True, "there is no network (the Hugging Face hub is unreachable) and they are not in its cache"
    return False, "they could not be fetched"


def _looks_local(spec: str) -> bool:
    p = Path(spec).expanduser()
    return p.exists() or spec.startswith((".", "/", "~")) or spec.count("/") != 1


def resolve_model_files(
    spec: str = RELEASE_REPO,
    files: Sequence[str] = DIT_FILES + AE_FILES,
    *,
    offline: bool | None = None,
    cache_dir: str | Path | None = None,
    optional: Sequence[str] = (),
) -> dict[str, Path]:
    """{filename: local path} for `files` (+ any of `optional` that exist) from a folder or a repo id."""
    if _looks_local(spec):
        root = Path(spec).expanduser()
        if root.is_file() and root.suffix in (".safetensors", ".sft") and "model.safetensors" in files:
            # a DiT file: the autoencoder files (and config.json) are looked for beside it
            rest = [f for f in files if f != "model.safetensors"]
            missing = [f for f in rest if not (root.parent / f).is_file()]
            if missing:
                raise WeightsNotFoundError(
                    f"{root.parent} (the folder of the given DiT file) lacks {', '.join(missing)}. "
                    f"{_manual_hint(RELEASE_REPO, missing)}"
                )
            found = {"model.safetensors": root, **{f: root.parent / f for f in rest}}
            found.update({f: root.parent / f for f in optional if (root.parent / f).is_file()})
            return found
        if not root.is_dir():
            kind = "model file" if root.suffix in (".safetensors", ".sft") else "model folder"
            raise WeightsNotFoundError(f"{kind} {root} does not exist. {_manual_hint(RELEASE_REPO, files)}")
        missing = [f for f in files if not (root / f).is_file()]
        if missing:
            raise WeightsNotFoundError(f"{root} lacks {', '.join(missing)}. {_manual_hint(RELEASE_REPO, files)}")
        found = {f: root / f for f in files}
        found.update({f: root / f for f in optional if (root / f).is_file()})
        return found

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline, why = _hub_mode(offline)
    found, missing = {}, []
    for f in list(files) + list(optional):
        try:
            found[f] = Path(hf_hub_download(spec, f, cache_dir=cache_dir, local_files_only=offline))
        except LocalEntryNotFoundError:
            if f in files:
                missing.append(f)
        except Exception as e:  # network failure, gated repo, 404 ...
            if f in files:
                raise WeightsNotFoundError(
                    f"could not download {f} from {spec}: {e}. {_manual_hint(spec, files)}"
                ) from e
    if missing:
        raise WeightsNotFoundError(f"{', '.join(missing)} of {spec}: {why}. {_manual_hint(spec, files)}")
    return found


def resolve_text_encoder(
    spec: str = "Qwen/Qwen3-8B", *, offline: bool | None = None, cache_dir: str | Path | None = None
) -> Path:
    """A local folder with the Qwen3 config, tokenizer and safetensors weights."""
    if _looks_local(spec):
        root = Path(spec).expanduser()
        need = ["config.json", "tokenizer_config.json"]
        missing = [f for f in need if not (root / f).is_file()]
        if not root.is_dir() or missing or not list(root.glob("*.safetensors")):
            raise WeightsNotFoundError(
                f"text encoder folder {root} is incomplete (needs config.json, tokenizer files and *.safetensors). "
                f"{_manual_hint('Qwen/Qwen3-8B', ['the whole repository'])}"
            )
        return root

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline, why = _hub_mode(offline)
    try:
        return Path(
            snapshot_download(
                spec, allow_patterns=list(TEXT_ENCODER_PATTERNS), cache_dir=cache_dir, local_files_only=offline
            )
        )
    except LocalEntryNotFoundError as e:
        raise WeightsNotFoundError(
            f"text encoder {spec} (Qwen3-8B, ~16 GB): {why}. "
            f"{_manual_hint(spec, ['config.json', 'tokenizer files', '*.safetensors'])}"
        ) from e
    except Exception as e:
        raise WeightsNotFoundError(
            f"could not download {spec}: {e}. {_manual_hint(spec, ['the whole repository'])}"
        ) from e


def download_files(
    repo: str,
    files: Sequence[str],
    dest: str | Path,
    *,
    offline: bool | None = None,
    tqdm_class=None,
) -> dict[str, Path]:
    """Download `files` of `repo` into the folder `dest` (resumable; files already there are kept).

    The explicit, user-chosen download path (ComfyUI's download node). Offline, or on a network error,
    raises WeightsNotFoundError saying which files to put where by hand.
    """
    import inspect

    from huggingface_hub import constants, hf_hub_download

    dest = Path(dest)
    offline = constants.HF_HUB_OFFLINE if offline is None else offline
    missing = [f for f in files if not (dest / f).is_file()]
    if missing and offline:
        raise WeightsNotFoundError(
            f"offline mode is on and {', '.join(missing)} are not in {dest}. {_manual_hint(repo, files, dest)}"
        )
    kw = {}
    if tqdm_class is not None and "tqdm_class" in inspect.signature(hf_hub_download).parameters:
        kw["tqdm_class"] = tqdm_class
    out = {}
    for f in files:
        if (dest / f).is_file():
            out[f] = dest / f
            continue
        try:
            out[f] = Path(hf_hub_download(repo, f, local_dir=str(dest), **kw))
        except Exception as e:
            raise WeightsNotFoundError(
                f"downloading {f} from {repo} failed ({e}); partial data is kept and resumes next time. "
                f"Or: {_manual_hint(repo, files, dest)}"
            ) from e
    return out
