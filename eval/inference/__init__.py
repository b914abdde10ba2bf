"""Inference for every eval entry point: model loading, batched stylisation, tiling, the baselines."""
