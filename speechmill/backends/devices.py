"""Where a model runs: `auto` resolves on the worker that loads it.

`asr.device: auto` is CUDA when CTranslate2 sees a GPU in this process, else the CPU;
`asr.compute_type: auto` is int8 on the CPU (the fastest type there, the one every
figure in docs/performance.md was measured with) and float16 on CUDA.
"""

from __future__ import annotations

import functools


@functools.cache
def cuda_devices() -> int:
    """GPUs CTranslate2 can use in this process (0 when it has no CUDA support)."""
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # no CUDA runtime: the CPU
        return 0


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if cuda_devices() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "auto":
        return compute_type
    return "float16" if resolve_device(device) == "cuda" else "int8"
