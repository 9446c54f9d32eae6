"""Every benchmark script starts and explains its options (the measurements themselves are not tests)."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPTS = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py")
                 if p.stem not in ("__init__", "common", "throughput"))


def test_every_benchmark_is_listed():
    assert {"overhead", "data_path", "time_to_accuracy", "inference", "ddp_scaling"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_as_documented(script):
    text = (REPO / "benchmarks" / f"{script}.py").read_text()
    assert f"python -m benchmarks.{script}" in text  # the command its docstring gives
    result = subprocess.run([sys.executable, "-m", f"benchmarks.{script}", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
