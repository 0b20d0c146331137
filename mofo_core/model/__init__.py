"""The Modality Forcing DiT."""

from .dit import MofoDiT, image_ids, text_ids

__all__ = ["MofoDiT", "image_ids", "text_ids"]
