"""Loss terms of the image autoencoders: VQ / KL bottleneck terms, PatchGAN, LPIPS, the adaptive
GAN weight. Each returns a named breakdown so the trainer logs every part."""
