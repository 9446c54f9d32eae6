"""A non-editable install carries the shipped weights: load them from another directory."""

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_wheel_install_ships_the_weights(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(REPO)], check=True, capture_output=True, timeout=600)
    assert (target / "zoo" / "_weights" / "manifest.json").exists()
    code = (
        "import zoo, torch; from zoo.weights import shipped_weights_dir; "
        "m = zoo.load_pretrained('lenet5_mnist'); "
        "print(shipped_weights_dir(), m(torch.rand(1, 1, 28, 28)).shape[1], sorted(zoo.list_pretrained()))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == str(target / "zoo" / "_weights")
    assert out.split()[1] == "10" and "lenet5_mnist" in out
