"""Keep ``torch.cuda.is_available()`` cheap on machines without an NVIDIA driver.

Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``, so that ``torch.cuda.is_available()``
asks NVML for the device count instead of initialising CUDA (which would break CUDA in processes
forked later). Where NVML's library is missing, as on machines without an NVIDIA driver, torch
tries to load it on every call, fails, and falls back to the CUDA runtime: the same answer as
without the variable, only slower. Adam and AdamW ask once per ``step()``; ``python -m
benchmarks.overhead`` measures what that costs a training step (its "NVML check on" row). The ``zoo``
command drops the variable for its training runs (:func:`zoo.runtime.nvml_check_dropped`); importing
the zoo leaves it as Lightning set it.
"""

from __future__ import annotations

import ctypes
import os

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
NVML_LIBRARY = "libnvidia-ml.so.1"


def nvml_loadable() -> bool:
    """Whether NVML's library loads in this process."""
    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        return False
    return True


def drop_unusable_nvml_check() -> bool:
    """Unset ``PYTORCH_NVML_BASED_CUDA_CHECK`` when NVML cannot be loaded; True if it was unset.

    With NVML present (a machine with an NVIDIA driver) the variable is left alone: there it does
    what Lightning sets it for.
    """
    if os.environ.get(NVML_CHECK) != "1" or nvml_loadable():
        return False
    del os.environ[NVML_CHECK]
    return True
