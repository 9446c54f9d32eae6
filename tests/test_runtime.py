"""The zoo changes its process only as the `zoo` command (zoo.runtime). Importing any zoo module, or
calling zoo.cli.main from Python, leaves the environment, logging, warnings and the socket default as
they were; the command's own settings, applied twice, are what they are applied once."""

import json
import logging
import os
import subprocess
import sys

import pytest

import zoo.cli
from zoo.runtime import PROGRAMMER_LOG_LINES, PROGRAMMER_WARNINGS

# Run in a new interpreter, so that "before" is a process the zoo has never touched. It prints the
# process's state at each step as one JSON object.
SCRIPT = r'''
import ast, contextlib, importlib, importlib.util, io, json, logging, os, pkgutil, socket, sys, warnings
from pathlib import Path


def state():
    def name(obj):  # the same object gives the same name
        return f"{type(obj).__qualname__}@{id(obj)}"

    loggers = {"": logging.getLogger(), **{key: logger for key, logger in logging.Logger.manager.loggerDict.items()
                                          if isinstance(logger, logging.Logger)}}
    return {"environ": dict(os.environ),
            "loggers": {key: [logger.level, logger.propagate, logger.disabled, [name(h) for h in logger.handlers],
                              [name(f) for f in logger.filters]] for key, logger in loggers.items()},
            "logging disabled": logging.root.manager.disable,
            "warnings": [repr(item) for item in warnings.filters],
            "socket timeout": socket.getdefaulttimeout(),
            "excepthook": name(sys.excepthook)}


def modules(folder, prefix):
    for info in pkgutil.iter_modules([str(folder)], prefix):
        yield info.name
        if info.ispkg:
            yield from modules(folder / info.name.rpartition(".")[2], info.name + ".")


def dependencies(names):
    """The modules outside the zoo that zoo modules import at their top level."""
    found = set()
    for name in names:
        spec = importlib.util.find_spec(name) if "." not in name else None
        path = Path(spec.origin) if spec else ROOT.joinpath(*name.split(".")[1:])
        path = path / "__init__.py" if path.is_dir() else path if path.suffix else path.with_suffix(".py")
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module)
    return sorted(name for name in found if name.split(".")[0] != "zoo")


def main_quietly(argv):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return zoo.cli.main(argv)


ROOT = Path(importlib.util.find_spec("zoo").origin).parent
NAMES = ["zoo", *modules(ROOT, "zoo.")]
# What they do when imported is theirs (Lightning sets an NVML variable, scikit-learn two of OpenMP's);
# sklearn.datasets is imported by the digits DataModule when it loads.
for dependency in [*dependencies(NAMES), "sklearn.datasets"]:
    importlib.import_module(dependency)
steps = {"before": state()}
for name in NAMES:
    importlib.import_module(name)
steps["imported"] = state()
import zoo.cli
import zoo.runtime

for run in ("list 1", "list 2"):
    assert main_quietly(["list"]) == 0
    steps[run] = state()
fit = ["fit", "--config", "lenet5_digits", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
       "--trainer.limit_val_batches", "1", "--test_after_fit", "false", "--trainer.enable_progress_bar", "false"]
for run in ("fit 1", "fit 2"):
    assert main_quietly(fit) == 0
    steps[run] = state()
for run in ("console 1", "console 2"):
    zoo.runtime.apply_console_settings()
    steps[run] = state()
steps["modules"] = NAMES
print(json.dumps(steps))
'''


@pytest.fixture(scope="module")
def steps(tmp_path_factory) -> dict:
    """The process's state before and after each step of SCRIPT, run in a new folder."""
    # A process as a user starts it: without the seed that a test run in this process before may have left
    # in os.environ (Lightning's seed_everything sets PL_GLOBAL_SEED and PL_SEED_WORKERS there).
    env = {key: value for key, value in os.environ.items() if key not in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path_factory.mktemp("runs"), capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_importing_every_zoo_module_changes_nothing_of_the_process(steps):
    assert len(steps["modules"]) > 40 and {"zoo.runtime", "zoo.models.base", "zoo.pretrained"} <= set(steps["modules"])
    assert "PYTORCH_NVML_BASED_CUDA_CHECK" in steps["before"]["environ"]  # Lightning's, which the zoo no longer drops
    assert steps["imported"] == steps["before"]


def test_main_called_twice_leaves_the_process_as_called_once(steps):
    # zoo list: nothing changes at all
    assert steps["list 1"] == steps["list 2"] == steps["imported"]
    # a training run: twice is once ...
    assert steps["fit 2"] == steps["fit 1"]
    # ... and what changed is Lightning's seed_everything (the recipe's seed), not a setting of the zoo's:
    # the NVML check the run dropped is back, no logger got a filter or a handler, no warning is hidden.
    before, after = steps["list 2"], steps["fit 1"]
    changed = {key for key in before["environ"].keys() | after["environ"].keys()
               if before["environ"].get(key) != after["environ"].get(key)}
    assert changed == {"PL_GLOBAL_SEED", "PL_SEED_WORKERS"} and not changed & before["environ"].keys()
    assert after["warnings"] == before["warnings"]
    assert {key: after["loggers"][key] for key in before["loggers"]} == before["loggers"]
    assert all(config == [logging.NOTSET, True, False, [], []] for key, config in after["loggers"].items()
               if key not in before["loggers"])
    assert {key: value for key, value in after.items() if key not in ("environ", "loggers")} == \
           {key: value for key, value in before.items() if key not in ("environ", "loggers")}


def test_the_console_settings_applied_twice_are_as_applied_once(steps):
    assert steps["console 2"] == steps["console 1"]
    applied, without = steps["console 1"], steps["fit 2"]
    for name in PROGRAMMER_LOG_LINES:
        assert len(applied["loggers"][name][4]) == len(without["loggers"][name][4]) + 1, name  # one filter more
    added = [item for item in applied["warnings"] if item not in without["warnings"]]
    assert len(added) == len(PROGRAMMER_WARNINGS) and all(item.startswith("('ignore'") for item in added)
    assert applied["environ"] == without["environ"]


def test_the_console_script_applies_the_settings_before_the_command(monkeypatch):
    calls = []
    monkeypatch.setattr(zoo.cli.atexit, "register", lambda *args: calls.append("exit handler"))
    monkeypatch.setattr(zoo.cli, "apply_console_settings", lambda: calls.append("settings"))
    monkeypatch.setattr(zoo.cli, "main", lambda: calls.append("main") or 0)
    with pytest.raises(SystemExit) as exit_:
        zoo.cli.console_main()
    assert exit_.value.code == 0 and calls == ["exit handler", "settings", "main"]


def test_a_download_times_out_on_its_own_connection_and_leaves_the_socket_default_alone(tmp_path, monkeypatch):
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from zoo import pretrained

    release, seen = threading.Event(), []

    class Server(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(socket.getdefaulttimeout())  # what a connection another thread opens now would get
            if self.path == "/stalls.pth":
                release.wait(10)  # a server that accepts and never answers
                return
            body = b"weights"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url, default = f"http://127.0.0.1:{server.server_port}", socket.getdefaulttimeout()
    monkeypatch.setattr(pretrained, "DOWNLOAD_TIMEOUT_S", 0.5)
    try:
        pretrained._download(f"{url}/good.pth", tmp_path / "cache" / "good.pth")
        assert (tmp_path / "cache" / "good.pth").read_bytes() == b"weights"
        with pytest.raises(TimeoutError):
            pretrained._download(f"{url}/stalls.pth", tmp_path / "cache" / "stalls.pth")
        assert seen == [default, default]  # other threads' connections kept their timeout during the downloads
        assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["good.pth"]  # no partial file left
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_litserve_shutdown_race_is_dropped_and_its_other_errors_kept():
    """zoo serve stopped with Ctrl-C: LitServe's monitor may find its manager process gone (a broken pipe)
    and log it as a crash; that record is dropped, a crash with any other error is not."""
    from zoo.runtime import _LOG_FILTERS

    def record(error):
        try:
            raise error
        except Exception:
            info = sys.exc_info()
        return logging.LogRecord("litserve.server", logging.ERROR, "server.py", 1, "Monitoring worker crashed", None, info)

    drop = _LOG_FILTERS["litserve.server"]
    assert not drop.filter(record(BrokenPipeError(32, "Broken pipe")))
    assert drop.filter(record(ValueError("a real fault")))
    assert drop.filter(logging.LogRecord("litserve.server", logging.INFO, "server.py", 1, "Shutting down", None, None))
