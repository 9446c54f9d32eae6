"""The journey of a pip user: the wheel installed into a fresh virtual environment that cannot see this
source tree, and the everyday commands run from an empty folder of the user's own."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO
from tests.test_serve import served

pytestmark = pytest.mark.compat  # the wheel and what it installs


@pytest.fixture(scope="module")
def pip_user(tmp_path_factory) -> Path:
    """A virtual environment with the zoo installed from its wheel; its `bin` folder.

    The dependencies are this environment's, reached through a .pth file (installing torch again
    would take minutes and gigabytes); the zoo itself is only the wheel's copy."""
    root = tmp_path_factory.mktemp("pip_user")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(root / "dist"),
                    str(REPO)], check=True, capture_output=True, timeout=600)
    wheel, = (root / "dist").glob("lightning_zoo-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, capture_output=True, timeout=300)
    python = root / "venv/bin/python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # Plain paths in a .pth file: the source tree's editable-install hook in this environment is not run.
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(outer)))
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return root / "venv/bin"


def _run(bin_dir: Path, *args: str, cwd: Path, env: dict) -> str:
    result = subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True,
                            timeout=900, env=env)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_a_pip_user_runs_the_everyday_commands_from_an_empty_folder(pip_user, data_dir, tmp_path):
    from benchmarks.scans import make_scans, read_mnist_test

    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(ZOO_DATA_DIR=str(data_dir), PATH=f"{pip_user}{os.pathsep}{env.get('PATH', '')}")
    user = tmp_path / "user"
    user.mkdir()
    where = _run(pip_user, "python", "-c", "import zoo; print(zoo.__file__)", cwd=user, env=env)
    assert Path(where.strip()).is_relative_to(pip_user.parent) and not Path(where.strip()).is_relative_to(REPO)

    installed = Path(_run(pip_user, "python", "-c", "from zoo.weights import shipped_weights_dir as w; "
                          "from zoo.recipes import shipped_recipes_dir as r; print(w()); print(r())",
                          cwd=user, env=env).split()[0]).parent
    assert sorted(p.name for p in (installed / "_recipes").glob("*.yaml")) == \
        sorted(p.name for p in (REPO / "recipes").glob("*.yaml"))
    assert (installed / "_weights/manifest.json").is_file()

    assert "zoo fit --config lenet5_mnist" in _run(pip_user, "zoo", "list", cwd=user, env=env)
    assert "made lenet5_mnist" in _run(pip_user, "zoo", "recipes", cwd=user, env=env)
    fit = _run(pip_user, "zoo", "fit", "--config", "lenet5_digits", cwd=user, env=env)
    accuracy = float(fit.split("test/acc = ")[1].split(",")[0])
    assert accuracy >= 0.95, fit[-2000:]
    # How training went: the run page, written again by zoo report, and two runs compared.
    run = Path("runs/lenet5_digits/version_0")
    assert f"Run page: {run / 'report.html'}" in fit
    page = (user / run / "report.html").read_text()
    assert "Loss and metrics by epoch" in page and "Confusion matrix" in page and "Layer dynamics" in page
    (user / run / "report.html").unlink()
    _run(pip_user, "zoo", "report", str(run), cwd=user, env=env)
    assert "Confusion matrix" in (user / run / "report.html").read_text()
    _run(pip_user, "zoo", "fit", "--config", "lenet5_digits", "--model.init_args.lr", "0.003",
         "--trainer.max_epochs", "2", cwd=user, env=env)
    compared = _run(pip_user, "zoo", "compare", str(run), "runs/lenet5_digits/version_1", cwd=user, env=env)
    assert "compare.html" in compared
    table = (user / "compare.html").read_text()
    assert "version_0" in table and "version_1" in table and "0.003" in table
    tuned = _run(pip_user, "zoo", "tune", "--config", "lenet5_digits", "--save_recipe", "tuned.yaml", cwd=user, env=env)
    assert "suggested learning rate:" in tuned and (user / "tuned.yaml").is_file()
    evaluated = _run(pip_user, "zoo", "evaluate", "lenet5_mnist", "--report", "report", cwd=user, env=env)
    assert " ok" in evaluated and "MISMATCH" not in evaluated and "report written to report/index.html" in evaluated
    assert (user / "report/confusion_matrix.png").is_file()

    images, labels = read_mnist_test(data_dir)
    truth = make_scans(images[:20], labels[:20], user / "scans")  # dark ink on light paper, JPEG
    table = _run(pip_user, "zoo", "infer", "lenet5_mnist", "scans", "--output", "scans.csv", cwd=user, env=env)
    assert table.strip() == "20 predictions written to scans.csv"
    rows = [line.split(",") for line in (user / "scans.csv").read_text().splitlines()[1:]]
    right = sum(truth[user / "scans" / Path(row[0]).name] == row[1] for row in rows)
    assert right >= 19, f"{right} of 20 scans read right"

    # A table of one's own: an MLP trained on a CSV in one command, and raw rows read by the shipped weight.
    from tests.test_readme import _table_files

    _table_files(user)  # rows.csv (four wines) and my.csv (a price to predict)
    mine = _run(pip_user, "zoo", "fit", "--config", "mlp_diabetes", "--data.path", "my.csv", "--data.target", "price",
                "--trainer.max_epochs", "5", cwd=user, env=env)
    assert "target price -> regression" in mine and "test/mse = " in mine
    wines = _run(pip_user, "zoo", "infer", "mlp_wine", "rows.csv", "--output", "wines.csv", cwd=user, env=env)
    assert wines.strip() == "4 predictions written to wines.csv"
    predicted = [line.split(",") for line in (user / "wines.csv").read_text().splitlines()]
    assert predicted[0] == ["id", "class", "probability"] and len(predicted) == 5
    assert all(row[1] in ("class_0", "class_1", "class_2") for row in predicted[1:])

    assert "wrote lenet5_mnist.onnx" in _run(pip_user, "zoo", "export", "lenet5_mnist", cwd=user, env=env)
    assert "wrote vae_mnist.pt2" in _run(pip_user, "zoo", "export", "vae_mnist", "--part", "decoder", "--format",
                                         "torch.export", cwd=user, env=env)
    for weights, label, folder in (("cgan_mnist", "7", "sevens"), ("cvae_mnist", "4", "fours")):
        sampled = _run(pip_user, "zoo", "sample", weights, "4", "--output", folder, "--label", label, cwd=user, env=env)
        assert sampled.strip() == f"4 samples written to {folder}"
        assert len(list((user / folder).glob("sample_*.png"))) == 4
    with served("lenet5_mnist", zoo=str(pip_user / "zoo"), cwd=user, env=env) as url:  # the serve extra: here, the suite's
        files = sorted((user / "scans").iterdir())
        answer = requests.post(f"{url}/predict", files=[("image", (f.name, f.read_bytes())) for f in files], timeout=120)
    served_right = sum(truth[user / "scans" / p["image"]] == p["class"] for p in answer.json()["predictions"])
    assert served_right == right  # what zoo infer read, zoo serve reads
    assert sorted(p.name for p in user.iterdir()) == ["compare.html", "fours", "lenet5_mnist.onnx", "my.csv", "report",
                                                     "rows.csv", "runs", "scans", "scans.csv", "sevens", "tuned.yaml",
                                                     "vae_mnist.pt2", "wines.csv"]
