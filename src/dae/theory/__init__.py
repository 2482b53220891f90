"""The paper's theory made computable on small problems.

- `distance`, `generators`, `estimator`: the complexity-induced distance of eq. 3.1,
  inf over generators G of complexity <= c of D(G#P_z, P_x), estimated on a ladder of c.
- `latents`, `mnist`: the latents compared by `dae complexity` (Gaussian, joint VAE, DAE VAE,
  contrastive).
- `linear_ae`: Theorem 4.1, linear autoencoders under norm bounds, closed form vs projected GD.
- `oned`: Appendix A.1, a Lipschitz-bounded monotone map from N(0, 1) to a uniform target.
"""
