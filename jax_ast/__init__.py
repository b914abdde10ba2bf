"""jax-ast: arbitrary style transfer in JAX/Flax with the style-aware balanced loss (Cheng et al., CVPR 2021)."""

__version__ = "0.1.0"
