"""Evaluation: inference, the stylise CLI, pair scoring, the paper's reproduction and the deception rate.

Sub-packages, lowest first; a module imports only from its own sub-package and the ones listed before it
(`tests/test_layering.py` checks it; docs/architecture.md, Evaluation):

1. `eval.common`     exit codes and printable messages (`guards`), atomic CSV/JSON records, run-folder file names
2. `eval.inference`  model loading, batched device-parallel stylisation, tiling, the baselines
3. `eval.stylize`    the stylise CLI: images, mixes, masks, video, presets   (`python -m eval.stylize`)
   `eval.score`      pair scoring: `eval.run` and its pairs, metrics, target cache, reports, figures, compare
   `eval.export`     ONNX export of a network with jax2onnx                 (`python -m eval.export`)
4. `eval.deception`  the artist classifier and the deception rate            (`python -m eval.deception`)
   `eval.app`        the local stylisation page (Gradio, optional)            (`python -m eval.app`)
5. `eval.reproduce`  the paper's reproduction report (uses the deception rate) (`python -m eval.reproduce`)
6. `eval.run`, `eval.compare`, `eval.artist_classifier`: thin entry points of the documented commands.

Modules on one level never import each other's sub-packages (`eval.stylize`, `eval.score` and `eval.export` are independent).
"""
