"""A non-editable install carries the shipped weights and recipes: use them from another directory."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.compat  # the install, and that every lower bound is tested


@pytest.mark.slow
def test_wheel_install_ships_the_weights_and_recipes(tmp_path, data_dir):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(REPO)], check=True, capture_output=True, timeout=600)
    assert (target / "zoo" / "_weights" / "manifest.json").exists()
    assert sorted(p.name for p in (target / "zoo" / "_recipes").glob("*.yaml")) == \
        sorted(p.name for p in (REPO / "recipes").glob("*.yaml"))
    code = (
        "import zoo, torch; from zoo.weights import shipped_weights_dir; from zoo.recipes import shipped_recipes_dir; "
        "m = zoo.load_pretrained('lenet5_mnist'); "
        "print(shipped_weights_dir(), shipped_recipes_dir(), m(torch.rand(1, 1, 28, 28)).shape[1], "
        "sorted(zoo.list_pretrained()))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, check=True).stdout
    assert out.split()[:2] == [str(target / "zoo" / "_weights"), str(target / "zoo" / "_recipes")]
    assert out.split()[2] == "10" and "lenet5_mnist" in out
    # The commands after training, from the installed package in a folder of the user's own.
    from PIL import Image

    Image.new("L", (28, 28)).save(tmp_path / "black.png")
    env = {"PYTHONPATH": str(target), "ZOO_DATA_DIR": str(data_dir)}
    for args, expected in ((["recipes"], "made lenet5_mnist"),
                           (["fit", "--config", "lenet5_digits", "--print_config"], "class_path: zoo.models.LeNet5"),
                           (["infer", "lenet5_mnist", "black.png"], "black.png"),
                           (["evaluate", "lenet5_mnist", "--report", "report"], "report written to report/index.html"),
                           (["export", "lenet5_mnist"], "wrote lenet5_mnist.onnx (onnx)"),
                           (["export", "vae_mnist", "--part", "decoder", "--format", "torch.export"], "wrote vae_mnist.pt2"),
                           (["sample", "cgan_mnist", "4", "--output", "sevens", "--label", "7"], "4 samples written to sevens"),
                           (["sample", "cvae_mnist", "4", "--output", "fours", "--label", "4"], "4 samples written to fours")):
        result = subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0 and expected in result.stdout, result.stderr[-2000:]
    assert {"lenet5_mnist.onnx", "vae_mnist.pt2", "report", "sevens", "fours"} <= {p.name for p in tmp_path.iterdir()}
    assert len(list((tmp_path / "sevens").glob("sample_*.png"))) == len(list((tmp_path / "fours").glob("sample_*.png"))) == 4
    assert (tmp_path / "report/confusion_matrix.png").is_file()


def _lower_bounds() -> dict[str, str]:
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert "lightning-zoo[export]" in extras["dev"], "the development install exports and checks ONNX files too"
    requirements = [*project["dependencies"], *(r for group in extras.values() for r in group if r != "lightning-zoo[export]")]
    bounds = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?>=([0-9.]+)", requirement.replace(" ", ""))
        assert match, f"{requirement!r}: every dependency needs a tested lower bound (name>=version)"
        bounds[match.group(1).lower()] = match.group(3)
    return bounds


def test_every_lower_bound_is_the_version_ci_installs():
    pinned = {}
    for line in (REPO / ".ci/lowest.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.lower()] = version
    from packaging.version import Version

    bounds = _lower_bounds()
    assert set(pinned) == set(bounds)
    for name, version in bounds.items():
        assert Version(pinned[name]) == Version(version), f"{name}: pyproject says >={version}, CI installs {pinned[name]}"
    assert "--constraint .ci/lowest.txt" in (REPO / ".ci/run").read_text()
