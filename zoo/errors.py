"""The zoo's errors: one hierarchy, so that a program can catch ``ZooError`` and a user reads one line.

Every error the zoo raises on purpose, about something a user can change, is a :class:`ZooError`.
Its subclass says what went wrong and its message says what to do. The ``zoo`` command prints these
errors as one line, without a traceback::

    ZooError
    ├── UsageError          an argument, option or setting that cannot work
    │   ├── RecipeNotFoundError, FramingError, InferenceError, ReportError
    │   └── ExportError     (ExportMismatch: the exported file computes something else)
    ├── DataError           data that is missing or cannot be read
    │   └── DatasetNotFoundError, ImageFolderError
    ├── WeightsError        weights that cannot be found, read or trusted
    ├── CheckpointError     a Lightning checkpoint that cannot be read or resumed
    └── NonFiniteLossError  training stopped at a loss of NaN or infinity (the settings diverge)

The subclasses live beside the code that raises them and add what a caller may need (the missing
files of a ``DatasetNotFoundError``, say); catch them by these four kinds.

Errors of the zoo's own code (a bug) are not ``ZooError``: they keep their traceback.
"""

from __future__ import annotations


class ZooError(Exception):
    """Something a user asked for cannot be done; the message says what was wrong and what to do."""


class UsageError(ZooError, ValueError):
    """An argument, option or setting that cannot work."""


class DataError(ZooError, ValueError):
    """Data that is missing or cannot be read: a dataset, an image file, a folder, a table."""


class WeightsError(ZooError):
    """Weights that cannot be found, read or trusted: a shipped name, a folder, a file, a download."""


class CheckpointError(ZooError):
    """A Lightning checkpoint that cannot be read, loaded or resumed; nothing was loaded from it."""
