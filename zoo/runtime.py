"""The changes the ``zoo`` command makes to its own process: each is measured and worth it there, and
none happens anywhere else.

``zoo.cli.console_main`` (the console script) calls :func:`apply_console_settings` before it runs the
command. Importing the zoo, or calling ``zoo.cli.main`` from Python (a notebook, a test), leaves the
process as it was: its allocator, environment, socket default, logging and warnings stay the user's.
The one change a training run needs while it runs, :func:`nvml_check_dropped`, is undone when the run
ends. A script of your own may call any of these functions; each may be called again, which changes
nothing more.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from zoo._cuda_check import NVML_CHECK, drop_unusable_nvml_check
from zoo.malloc import keep_freed_memory

# Lines Lightning prints for programmers on every run; a user of the zoo command has nothing to do about them.
PROGRAMMER_LOG_LINES = {
    # an advertisement for another logger; the absence of accelerators the machine does not have
    # and Lightning's note that zoo.callbacks.LayerSummary replaces its summary, as it should
    "lightning.pytorch.utilities.rank_zero": ("💡 Tip:", "GPU available: False", "TPU available: False",
                                              "Trainer already configured with model summary",
                                              # how a step-wise schedule learns the run's length
                                              "Loading `train_dataloader` to estimate number of stepping batches"),
    "lightning.pytorch.trainer.connectors.checkpoint_connector": ("`weights_only` was not set",),
    # zoo serve stopped with Ctrl-C: LitServe's monitoring thread may still ask its manager process, which
    # the same Ctrl-C has ended, whether to stop, and logs the broken pipe as a crash (a shutdown race:
    # dropped only when the error is that the manager is gone, see _DropLines)
    "litserve.server": ("Monitoring worker crashed",),
}
# What a record dropped by its prefix must carry, if it carries an error: the manager process gone.
_SHUTDOWN_ERRORS = (BrokenPipeError, ConnectionResetError, EOFError)
PROGRAMMER_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",  # Lightning's own use of a deprecated torch API
    # The frozen batch norms of a fine-tuning strategy (zoo.finetune): in eval mode by design.
    r"Found \d+ module\(s\) in eval mode at the start of training",
    r"No seed found, seed set to 0",  # said again by the "Seed set to 0" line that follows it
    # DDP's gradient buckets are laid out for contiguous gradients; conv weights' gradients (channels-last
    # ones above all) have other strides, which costs one copy per step and nothing a user can change.
    r"Grad strides do not match bucket view strides",
    # In-memory datasets need no worker processes; Lightning's hint about workers does not apply.
    r".*does not have many workers.*",
    # A resumed run writes into its own folder again, as it should; the zoo keeps its metrics.csv rows
    # (zoo.trainer_cli.KeepMetricsOnResume), and a TensorBoard or W&B run has its CSV file beside it.
    r"Experiment logs directory .* exists and is not empty",
    r"Checkpoint directory .* exists and is not empty",
)


class _DropLines(logging.Filter):
    """Drops the records whose message starts with one of ``prefixes`` (and whose error, if they carry one,
    is a closed connection to a process that has ended)."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.prefixes):
            return True
        error = record.exc_info[1] if record.exc_info else None
        return error is not None and not isinstance(error, _SHUTDOWN_ERRORS)  # another error is kept


# One filter object per logger: Logger.addFilter skips a filter the logger already has.
_LOG_FILTERS = {name: _DropLines(prefixes) for name, prefixes in PROGRAMMER_LOG_LINES.items()}


def quiet_programmer_messages() -> None:
    """Keep the lines meant for programmers, not users, out of the zoo command's output.

    A second call adds no filter: the logging filters are the same objects, and ``warnings`` replaces
    an identical filter instead of adding it again.
    """
    for name, drop in _LOG_FILTERS.items():
        logging.getLogger(name).addFilter(drop)
    for message in PROGRAMMER_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


@contextmanager
def log_lines_dropped(lines: dict[str, tuple[str, ...]]) -> Iterator[None]:
    """Without the log lines of ``lines`` (logger name -> message prefixes) while the block runs.

    For lines that are programmer messages in one command only (``zoo tune`` hides those of the
    learning-rate finder's temporary checkpoint, which ``zoo fit --ckpt_path`` still shows); the
    filters are removed when the block ends.
    """
    filters = {name: _DropLines(prefixes) for name, prefixes in lines.items()}
    for name, drop in filters.items():
        logging.getLogger(name).addFilter(drop)
    try:
        yield
    finally:
        for name, drop in filters.items():
            logging.getLogger(name).removeFilter(drop)


@contextmanager
def nvml_check_dropped() -> Iterator[None]:
    """Without Lightning's NVML check, where NVML cannot load, while the block runs; restored after.

    Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``; where NVML's library is missing (no
    NVIDIA driver) every ``torch.cuda.is_available()`` then tries to load it, fails and answers as
    without the variable. Adam asks once per step: 140 µs a step, 3 % of a LeNet-5 step (the "NVML
    check on" row of ``python -m benchmarks.overhead``; see :mod:`zoo._cuda_check`).
    The variable is process-wide and Lightning sets it when it is imported, after the zoo command has
    started, so the command drops it for its training run only. A training loop of your own that
    wants the same runs inside this block.
    """
    dropped = drop_unusable_nvml_check()
    try:
        yield
    finally:
        if dropped:
            os.environ[NVML_CHECK] = "1"


def apply_console_settings() -> None:
    """Make this process the ``zoo`` command's: called by the console script before the command runs.

    - glibc's malloc keeps freed memory for reuse (:func:`zoo.malloc.keep_freed_memory`): without it,
      a LeNet-5 epoch on MNIST on a 2-core CPU took up to 1.5 million page faults and 4.4 s instead
      of 2.3 s; ``ZOO_SYSTEM_MALLOC=1`` opts out.
    - the lines Lightning prints for programmers are hidden (:func:`quiet_programmer_messages`).

    A second call changes nothing.
    """
    keep_freed_memory()
    quiet_programmer_messages()
