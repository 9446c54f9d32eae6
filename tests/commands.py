"""The `zoo` command run in the test's own process: the code the console script runs, with its process
settings (zoo.runtime: malloc, the programmer messages it hides), without the seconds a new interpreter
spends importing torch and Lightning. Tests of the console script itself, its exit statuses, terminals
and multi-process runs start real processes instead."""

import contextlib
import io
import os
import subprocess
from unittest import mock

from zoo.cli import main
from zoo.runtime import apply_console_settings


def zoo_command(*args: str, cwd, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``zoo ARGS...`` run in ``cwd`` with ``env`` added to the environment: its exit status and what
    it printed on stdout and stderr."""
    apply_console_settings()  # as the console script does; a second call changes nothing
    out, err = io.StringIO(), io.StringIO()
    with (contextlib.chdir(cwd), mock.patch.dict(os.environ, env or {}), contextlib.redirect_stdout(out),
          contextlib.redirect_stderr(err)):
        try:
            status = main(list(args))
        except SystemExit as exit_:  # argparse's errors and --help
            status = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    return subprocess.CompletedProcess(["zoo", *args], status, out.getvalue(), err.getvalue())
