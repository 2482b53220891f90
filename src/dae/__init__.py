"""dae: Decoupled Autoencoders for latent generative models."""

__version__ = "0.1.0"
