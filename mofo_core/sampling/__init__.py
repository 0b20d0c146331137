"""Denoising: the per-modality Euler sampler, its schedules, masks for edits, and CFG-parallel."""
