"""Benchmarks of jax-ast against PyTorch twins of its networks (``python -m benchmarks.<name>``); need torch."""
