"""The errors mofo_core raises on purpose: each message says what went wrong and what to do.

All are subclasses of the built-in error a caller would expect (ValueError for a bad file or prompt,
FileNotFoundError for missing weights, ...), so `except ValueError` keeps working. Their `__module__` is the
public package name: ComfyUI's error panel shows `module.QualName`, and a custom node's modules are named after
its folder path there (`/.../custom_nodes/ComfyUI-ModalityForcing.mofo_core.weights.checkpoint`), which reads as noise.
"""

from __future__ import annotations


def _public(cls: type) -> type:
    cls.__module__ = "mofo_core"
    return cls


@_public
class CheckpointError(ValueError):
    """The file is not a usable checkpoint; the message says why and what to do."""


@_public
class AutoEncoderCheckpointError(CheckpointError):
    """The file is not a usable FLUX.2 autoencoder file; the message says what it is and what to use."""


@_public
class PromptTooLongError(ValueError):
    """A prompt does not fit the 512-token window the model was trained with (`tokens` of `limit`, when known)."""

    def __init__(self, message: str, *, tokens: int | None = None, limit: int | None = None):
        super().__init__(message)
        self.tokens, self.limit = tokens, limit


@_public
class WeightsNotFoundError(FileNotFoundError):
    """Model files are missing; the message lists which files to put where."""


@_public
class MissingDependencyError(ImportError):
    """An optional library needed for one file format is not installed (the message says what to install)."""


@_public
class NonFiniteResultError(RuntimeError):
    """The sampler produced NaN / inf; nothing is saved."""


__all__ = ["AutoEncoderCheckpointError", "CheckpointError", "MissingDependencyError", "NonFiniteResultError",
           "PromptTooLongError", "WeightsNotFoundError"]
