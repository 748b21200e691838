"""hjepa-jax: H-JEPA self-supervised ViT pretraining in JAX/Flax."""
