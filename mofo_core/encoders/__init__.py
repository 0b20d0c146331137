"""The FLUX.2 autoencoder and the Qwen3 text encoder: the two models around the DiT."""
