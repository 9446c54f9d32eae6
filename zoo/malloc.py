"""Keep freed memory in the process, so that training steps on the CPU stop faulting their pages in.

glibc's ``malloc`` hands memory back to the kernel when the free space at the top of its heap passes
a threshold, by default twice the largest block it has given back so far. A training step allocates
its activations and gradients (up to megabytes each) and frees them together at its end, which often
leaves more than that free at the top of the heap: glibc returns it, and the next step faults every
page in again. On a 2-core CPU that came to up to 1.5 million page faults in one epoch of LeNet-5 on
MNIST, which then took 4.4 s instead of 2.3 s, in some epochs and not others
(``ZOO_SYSTEM_MALLOC=1 python -m benchmarks.overhead`` prints the faults of each run).

:func:`keep_freed_memory` fixes both thresholds with ``mallopt``: blocks under 32 MiB (glibc's largest
allowed value) come from the heap, and up to 1 GiB of free space may stay at its top. The process
then keeps the memory of its largest step, as the CUDA caching allocator does on a GPU. The ``zoo``
command calls it before it starts; in a script of your own, call it yourself:

    >>> import zoo.malloc
    >>> zoo.malloc.keep_freed_memory()  # doctest: +SKIP
    True

It leaves malloc alone where you have tuned it yourself (``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TOP_PAD_`` or ``glibc.malloc`` tunables in ``GLIBC_TUNABLES``)
and where ``ZOO_SYSTEM_MALLOC=1`` asks it to; on other C libraries it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform

OPT_OUT = "ZOO_SYSTEM_MALLOC"
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")

# mallopt's parameter numbers, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 2**20  # the largest value glibc accepts on 64-bit systems
TRIM_THRESHOLD = 2**30


def _user_tuned() -> bool:
    return any(name in os.environ for name in USER_SETTINGS) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it after every step.

    Returns True when the settings were applied, False when malloc was left as it was: not glibc,
    ``ZOO_SYSTEM_MALLOC=1``, or malloc tuned through the environment. Raises ``OSError`` if glibc
    refuses a setting.
    """
    if os.environ.get(OPT_OUT) == "1" or _user_tuned():
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # The mmap threshold first: setting either value turns off glibc's adjustment of both.
    for parameter, value in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        if mallopt(parameter, value) != 1:
            raise OSError(f"glibc's mallopt({parameter}, {value}) failed; set {OPT_OUT}=1 to leave malloc as it is")
    return True
