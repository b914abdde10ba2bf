"""ONNX export of a jax-ast network (`python -m eval.export`; docs/export.md).

* `graphs`  the traced functions (whole stylisation; style encoder and stylise-with-code) and their conversion
            to ONNX with jax2onnx (the optional ``export`` extra), metadata included;
* `lowering` trace-time rewrites (Inception pools, the mobile transformer's convs) that jax2onnx converts;
* `cli`     the command: flag checks (exit 2, nothing written), load, export, write.
"""
