"""Shared fixtures (the helpers themselves are in helpers.py)."""

from __future__ import annotations

import helpers  # noqa: F401  (puts the repository on sys.path first)
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """(tmp, {node_id: node class}): the pack loaded against ComfyUI stand-ins, with tiny weights in its models/."""
    from node_env import pack_env

    yield from pack_env(tmp_path_factory)
