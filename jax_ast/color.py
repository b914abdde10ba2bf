"""Colour preservation: keep the content image's colours while transferring the style.

Two common methods, both host-side numpy on float [H, W, 3] RGB images:

* `coral(style, content)`, applied to the **style pixels before encoding** (AdaIN ``test.py``,
  docs/architectures.md, AdaIN): the style image is recoloured so that its per-channel mean and 3x3 colour
  covariance equal the content's, then stylised as usual.
* `preserve_luminance(stylized, content)`, applied **after** stylisation (Gatys et al. 2016, "luminance-only
  transfer"): luminance (YIQ's Y) from the stylised image, chroma (I, Q) from the content.

Computations run in float64 and return float32, unclamped (the networks accept slightly out-of-range inputs;
`jax_ast.imageio.save_image` clamps when writing).
"""

from __future__ import annotations

import numpy as np

# FCC NTSC RGB -> YIQ. The inverse is computed from it, not copied as rounded constants.
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                       [0.595716, -0.274453, -0.321263],
                       [0.211456, -0.522591, 0.311135]], dtype=np.float64)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)

_STD_FLOOR = 1e-12  # a constant channel (std 0) standardises to 0 instead of NaN


def coral(source_style: np.ndarray, target_content: np.ndarray, *, match_original: bool = False,
          eps: float = 1e-5) -> np.ndarray:
    """Recolours the style image so its colour statistics match the content's (CORAL on RGB pixels).

    With X̂ the 3 x N pixels standardised per channel (mean 0, unbiased std 1):

    * default (**fixed**): R = X̂X̂ᵀ / (N - 1) + eps·I, the channel correlation matrix, so that the result has
      exactly the content's mean and (unbiased) covariance, up to ``eps``, whatever the two pixel counts;
    * ``match_original=True``: R = X̂X̂ᵀ + I, as pytorch-AdaIN's ``coral``. Because R is not divided by N, the
      recoloured style's covariance is off by the ratio of the two pixel counts (its std by about
      sqrt((N_content - 1) / (N_style - 1))) when the images differ in size; use this only to reproduce the
      original's outputs.

    Then style' = sqrt(R_content) · sqrt(R_style)⁻¹ · X̂_style · std_content + mean_content, with symmetric
    matrix square roots by eigendecomposition (equal to the original's SVD for these SPD matrices).

    Args:
      source_style: float [Hs, Ws, 3] RGB.
      target_content: float [Hc, Wc, 3] RGB (any size).
      match_original: reproduce the original's un-normalised covariance (see above).
      eps: ridge added to the correlation matrices in the fixed version (keeps grey images invertible).

    Returns:
      float32 [Hs, Ws, 3], the recoloured style image (unclamped).
    """
    style_pixels, style_mean, style_std = _flatten_standardize(source_style, "source_style")
    content_pixels, content_mean, content_std = _flatten_standardize(target_content, "target_content")
    style_r = _correlation(style_pixels, match_original=match_original, eps=eps)
    content_r = _correlation(content_pixels, match_original=match_original, eps=eps)
    recoloured = _sym_power(content_r, 0.5) @ _sym_power(style_r, -0.5) @ style_pixels
    recoloured = recoloured * content_std + content_mean
    return recoloured.T.reshape(np.shape(source_style)).astype(np.float32)


def _flatten_standardize(image: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[H, W, 3] -> (standardised 3 x N pixels, mean 3 x 1, unbiased std 3 x 1), float64."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be [H, W, 3], got shape {image.shape}")
    pixels = image.reshape(-1, 3).T
    if pixels.shape[1] < 2:
        raise ValueError(f"{name} needs at least 2 pixels, got shape {image.shape}")
    mean = pixels.mean(axis=1, keepdims=True)
    std = pixels.std(axis=1, ddof=1, keepdims=True)
    return (pixels - mean) / np.maximum(std, _STD_FLOOR), mean, std


def _correlation(standardized: np.ndarray, *, match_original: bool, eps: float) -> np.ndarray:
    """3 x 3 regularised second-moment matrix of standardised 3 x N pixels."""
    moments = standardized @ standardized.T
    if match_original:
        return moments + np.eye(3)
    return moments / (standardized.shape[1] - 1) + eps * np.eye(3)


def _sym_power(matrix: np.ndarray, power: float) -> np.ndarray:
    """matrix ** power for a symmetric positive-definite matrix, by eigendecomposition."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    if eigenvalues.min() <= 0:
        raise ValueError(f"matrix is not positive definite (eigenvalues {eigenvalues})")
    return (eigenvectors * eigenvalues**power) @ eigenvectors.T


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    """float [..., 3] RGB -> float64 [..., 3] YIQ (Y = luminance, I and Q = chroma)."""
    return np.asarray(image, dtype=np.float64) @ RGB_TO_YIQ.T


def yiq_to_rgb(image: np.ndarray) -> np.ndarray:
    """float [..., 3] YIQ -> float64 [..., 3] RGB; exact inverse of `rgb_to_yiq`."""
    return np.asarray(image, dtype=np.float64) @ YIQ_TO_RGB.T


def preserve_luminance(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Luminance-only transfer: the stylised image's luminance with the content's chroma.

    Args:
      stylized: float [H, W, 3] RGB, the network output.
      content: float [H, W, 3] RGB, the content image at the same size.

    Returns:
      float32 [H, W, 3] RGB (unclamped).
    """
    stylized, content = np.asarray(stylized), np.asarray(content)
    if stylized.shape != content.shape or stylized.shape[-1:] != (3,):
        raise ValueError(f"stylized and content must both be [H, W, 3] of one size, got {stylized.shape} "
                         f"and {content.shape}")
    mixed = rgb_to_yiq(content)
    mixed[..., 0] = rgb_to_yiq(stylized)[..., 0]
    return yiq_to_rgb(mixed).astype(np.float32)


PRESERVE_COLOR_METHODS: tuple[str, ...] = ("none", "coral", "luminance")
