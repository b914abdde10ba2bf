"""The style-transfer networks: pure Flax modules behind one interface (built by name with
`jax_ast.archs.build`, from each network's plug-in; this package imports no plug-in).

Every network is a Flax linen module with

* ``__call__(content, style, alpha=1.0, train=False) -> (stylized, aux)`` where ``content`` is
  float[B, Hc, Wc, 3] and ``style`` float[B, Hs, Ws, 3], both RGB in [0, 1]; ``stylized`` is
  float32[B, Hc, Wc, 3] (same size as the content, unclamped) and ``aux`` a dict of the named
  intermediates the native losses need;
* ``encode_style(style) -> code`` and ``stylize_with_code(content, code, alpha=1.0) -> stylized`` so a
  style is encoded once and applied to many contents (call them with ``model.apply(..., method=...)``);
* ``encode_content(content) -> content code`` (a pytree with leading axis B: the encoder features the
  network transforms; for Magenta, whose transformer is the whole network, the content image itself) and
  ``stylize_codes(content_code, code, alpha, height, width) -> stylized`` [B, height, width, 3] (height,
  width: the content's size, static ints), so a content is encoded once and stylised with many styles;
  ``stylize_with_code(content, code, alpha)`` is exactly ``stylize_codes(encode_content(content), code,
  alpha, H, W)`` (it is built from the two);
* a class attribute ``TRAINABLE: tuple[str, ...]`` naming the top-level parameter collections that
  the original method trains (the rest, e.g. the VGG encoder, is frozen);
* for several styles per image, ``stylize_mixed(content, codes, weights, alpha)`` and
  ``stylize_regions(content, codes, masks, alpha)`` (with ``stylize_interpolated`` / ``stylize_masked``
  taking style images instead of codes), following the rules of `jax_ast.models.mixing`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["split_trainable"]


def split_trainable(model: Any, params: dict) -> tuple[dict, dict]:
    """Split a params dict into (trainable, frozen) by the model's ``TRAINABLE`` top-level keys."""
    trainable_keys = set(model.TRAINABLE)
    trainable = {k: v for k, v in params.items() if k in trainable_keys}
    frozen = {k: v for k, v in params.items() if k not in trainable_keys}
    return trainable, frozen
