"""What the benchmarks run on: the device, its bf16 peak, the PyTorch device that matches it, machine info.

The peaks are dense (no structured sparsity) bf16 matrix throughput per device as JAX counts devices
(one GPU, one TPU chip); sources in docs/performance.md. An unknown device, and every CPU, has no peak:
the benchmarks print "n/a" for its % of peak.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

# (substring of jax's device_kind, lower case; dense bf16 TFLOP/s). First match wins: specific before general.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("h100 pcie", 756.0),
    ("h100", 989.4),   # SXM5; also "H100 80GB HBM3"
    ("h200", 989.4),   # the H100 SXM5 compute with more memory
    ("a100", 312.0),
    ("tpu v4", 275.0),
    ("tpu v5 lite", 197.0),  # v5e
    ("tpu v5e", 197.0),
    ("tpu v5p", 459.0),
    ("tpu v5", 459.0),       # v5p reports "TPU v5"
    ("tpu v6 lite", 918.0),  # v6e (Trillium)
    ("tpu v6e", 918.0),
)


def peak_bf16_tflops(device_kind: str) -> float | None:
    """Dense bf16 peak TFLOP/s of one device of `device_kind` (jax's `Device.device_kind`), None if unknown."""
    kind = device_kind.lower()
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in kind), None)


def percent_of_peak(tflops_per_s: float | None, device_kind: str, devices: int = 1) -> float | None:
    """`tflops_per_s` (over `devices` devices) as % of their bf16 peak; None for an unknown device."""
    peak = peak_bf16_tflops(device_kind)
    if peak is None or tflops_per_s is None:
        return None
    return 100.0 * tflops_per_s / (peak * devices)


def torch_device(jax_backend: str) -> tuple[str | None, str]:
    """(torch device for the comparison or None, why): CPU against CPU, CUDA against a GPU; none on a TPU,
    or on a GPU when this torch has no CUDA."""
    if jax_backend == "cpu":
        return "cpu", "PyTorch on the CPU"
    try:
        import torch
    except ImportError:
        return None, "torch is not installed: jax-ast alone"
    if jax_backend in ("gpu", "cuda", "rocm"):
        if torch.cuda.is_available():
            return "cuda", f"PyTorch on CUDA ({torch.cuda.get_device_name(0)})"
        return None, (f"torch {torch.__version__} has no CUDA on this {jax_backend.upper()} machine: "
                      "jax-ast alone (install a CUDA build of torch to compare)")
    return None, f"no PyTorch device for JAX's {jax_backend} backend: jax-ast alone"


def sync_torch(device: str | None) -> None:
    """Waits for queued CUDA work (torch launches asynchronously); nothing to do on the CPU."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def machine_info() -> dict[str, Any]:
    """Device kind, counts, versions and flags of this process's JAX (and torch, if importable)."""
    import jax

    device = jax.devices()[0]
    info = {"backend": jax.default_backend(), "device_kind": device.device_kind, "device_count": jax.device_count(),
            "peak_bf16_tflops": peak_bf16_tflops(device.device_kind), "jax": jax.__version__,
            "jaxlib": getattr(jax.lib, "__version__", None) or _version("jaxlib"), "python": sys.version.split()[0],
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "")}
    try:
        import torch
    except ImportError:
        info["torch"] = None
    else:
        info.update(torch=torch.__version__, torch_cuda=torch.version.cuda, torch_threads=torch.get_num_threads())
    return info


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
