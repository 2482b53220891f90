"""Generative priors on a frozen autoencoder's latent: GPT over VQ codes, DiT over KL latents.

Data flows cache.py (encode once) -> models.py (GPT / DiT + diffusion) -> task.py (training) ->
generate.py (sample, decode, write `samples.npz`).
"""
