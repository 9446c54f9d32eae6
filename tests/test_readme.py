"""Every command in the shell blocks of the README and of the pages under docs/ is run by the test suite, as
written; every relative link of those pages leads somewhere."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import numpy as np
import torch

import zoo
from tests.conftest import REPO
from tests.pages import PAGES, section
from tests.test_experiments import DOCUMENTED_EXPERIMENTS, EXPERIMENT_COMMANDS, TUNE_COMMAND

pytestmark = pytest.mark.compat  # the README's commands, as written

CI_RUN = (REPO / ".ci/run").read_text()


def readme_commands() -> list[str]:
    """The commands of the ```bash blocks of README.md and docs/*.md, page by page in order: comments dropped,
    continued lines joined."""
    blocks = [block for page in PAGES for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)]
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#\s.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(re.sub(r"\s+", " ", command))
    return commands


# Run one after another in one folder by test_readme_commands_run_as_written: each line's outputs are
# there for the next (the resume continues the newest run, the test reads version_0's checkpoint).
RUN_IN_ORDER = [
    "zoo fit --config lenet5_digits",
    "zoo evaluate lenet5_mnist",
    "zoo list",
    "zoo fit --config lenet5_digits --trainer.max_epochs 3 --model.init_args.lr 0.01",
    "zoo report runs/lenet5_digits/version_0",
    "zoo compare runs/lenet5_digits/version_0 runs/lenet5_digits/version_1 --output compare.html",
    "zoo fit --config lenet5_digits --ckpt_path last",
    "zoo test --config lenet5_digits --ckpt_path runs/lenet5_digits/version_0/checkpoints/last.ckpt",
    "zoo fit --config lenet5_digits --trainer.default_root_dir experiments",
    "zoo fit --config lenet5_digits --print_config",
    "zoo recipes",
    "zoo fit --config my_recipe.yaml --print_config",
    "zoo evaluate mlp_mnist",
    "zoo fit --config lenet5_digits --trainer.accelerator cpu --trainer.devices 2 --trainer.strategy ddp",
    "torchrun --standalone --nproc_per_node 2 -m zoo.cli fit --config lenet5_digits "
    "--trainer.accelerator cpu --trainer.devices 2",
]
VGG_FOLDER = "zoo fit --config transfer_vgg16_folder --data.root path/to/images --model.num_classes 3"
INFER = ["zoo infer lenet5_mnist my_digits/", "zoo infer lenet5_mnist my_digits/ --output preds.csv",
         "zoo infer ae_mnist my_digits/ --output reconstructions/", "zoo sample vae_mnist 16 --output samples/",
         "zoo sample cgan_mnist 16 --output sevens/ --label 7", "zoo sample cvae_mnist 16 --output fours/ --label 4"]
EXPORT = ["zoo export lenet5_mnist", "zoo export lenet5_mnist --format torch.export",
          "zoo export vae_mnist --part decoder --output vae_sampler.onnx"]
SERVE = ["zoo serve lenet5_mnist", "curl -F image=@digit.png http://127.0.0.1:8000/predict", "zoo serve cgan_mnist",
         'curl -H "Content-Type: application/json" -d \'{"n": 4, "seed": 0, "labels": 7}\' http://127.0.0.1:8000/predict']
TABLE = ["zoo fit --config mlp_wine", "zoo fit --config mlp_diabetes --data.path my.csv --data.target price",
         "zoo infer mlp_wine rows.csv", "zoo infer mlp_wine rows.csv --output predictions.csv"]
REPORT = ["zoo evaluate lenet5_mnist --report report/",
          "zoo evaluate runs/lenet5_digits/version_0/checkpoints/last.ckpt --report my_report/"]
# Commands that are .ci/run's own job: the install and the test command.
# The everyday command runs a subset of what CI's command runs.
# The user's install from a checkout: tests/test_pip_user.py builds the wheel, installs it into a fresh
# virtual environment and runs the zoo command from it. (pip install lightning-zoo, from PyPI,
# is the same package; the README names it in prose, since no test can reach PyPI.)
USER_INSTALL = ["pip install ."]
# zoo tune and the experiments (docs/experiments.md): tests/test_experiments.py runs each as written and checks
# what it claims (the longer experiments in its slow tests).
TUNE_AND_EXPERIMENTS = [TUNE_COMMAND, *(EXPERIMENT_COMMANDS[name] for name in DOCUMENTED_EXPERIMENTS)]
RUN_BY_CI = ['pip install -e ".[dev]"', "export ZOO_DATA_DIR=/path/to/data", 'python -m pytest -n auto -m "not slow"',
             "python -m pytest -n auto --durations=30"]


def test_every_readme_command_is_run_by_the_suite():
    assert set(readme_commands()) == {*RUN_IN_ORDER, VGG_FOLDER, *INFER, *TABLE, *EXPORT, *REPORT, *SERVE, *USER_INSTALL,
                                        *RUN_BY_CI, *TUNE_AND_EXPERIMENTS}


def test_ci_installs_and_tests_the_way_the_readme_says():
    assert 'install --quiet --disable-pip-version-check "${pip_args[@]}" -e ".[dev]"' in CI_RUN
    assert 'python -m pytest -n auto --durations=30 "${pytest_args[@]}")' in CI_RUN and "export ZOO_DATA_DIR=" in CI_RUN
    assert "run_suite newest\n" in CI_RUN and "run_suite lowest --constraint .ci/lowest.txt -- -m compat\n" in CI_RUN


def _run(command: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    # the environment's own console scripts first (a virtual environment need not be activated)
    executable = shutil.which(argv[0], path=str(Path(sys.executable).parent)) or shutil.which(argv[0])
    assert executable, f"{argv[0]} is not on PATH: install the project (pip install -e '.[dev]') in this environment"
    result = subprocess.run([executable, *argv[1:]], cwd=cwd, env={**os.environ, **env}, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """An empty folder of the user's own: the recipes, run by name, come with the package."""
    return tmp_path


@pytest.mark.slow
def test_readme_commands_run_as_written(user_folder, data_dir):
    env = {"ZOO_DATA_DIR": str(data_dir)}
    # a recipe of the user's own, saved as the README says: zoo recipes show lenet5_digits > my_recipe.yaml
    (user_folder / "my_recipe.yaml").write_text(_run("zoo recipes show lenet5_digits", user_folder, env).stdout)
    outputs = {command: _run(command, user_folder, env).stdout for command in RUN_IN_ORDER}

    assert "test/acc = " in outputs[RUN_IN_ORDER[0]]
    assert "ok" in outputs["zoo evaluate lenet5_mnist"] and "MISMATCH" not in outputs["zoo evaluate mlp_mnist"]
    assert "lenet5_mnist" in outputs["zoo list"]
    runs = user_folder / "runs/lenet5_digits"
    # quickstart, the 3-epoch run (then resumed in place), the test, the DDP run and the torchrun run
    assert sorted(p.name for p in runs.iterdir()) == [f"version_{i}" for i in range(5)]
    resumed = torch.load(runs / "version_1/checkpoints/last.ckpt", weights_only=True)
    assert resumed["epoch"] > 3  # the 3-epoch run went on to the recipe's own number of epochs
    assert (user_folder / "experiments/lenet5_digits/version_0/checkpoints/last.ckpt").is_file()
    assert "class_path: zoo.models.LeNet5" in outputs["zoo fit --config lenet5_digits --print_config"]
    assert "class_path: zoo.models.LeNet5" in outputs["zoo fit --config my_recipe.yaml --print_config"]
    assert "lenet5_mnist" in outputs["zoo recipes"] and "lenet5_digits" in outputs["zoo recipes"]
    assert (runs / "version_0/report.html").is_file() and "model.init_args.lr" in (user_folder / "compare.html").read_text()
    assert sorted(p.name for p in user_folder.iterdir()) == ["compare.html", "experiments", "my_recipe.yaml", "runs"]


@pytest.mark.slow
def test_readme_vgg16_folder_command_runs_as_written(user_folder, tmp_path):
    """ImageNet VGG-16 fine-tuned on a folder of images; the weights are random ones in torchvision's cache."""
    import torchvision
    from PIL import Image

    torch_home = tmp_path / "torch_home"
    cache = torch_home / "hub/checkpoints"
    cache.mkdir(parents=True)
    url = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    torch.manual_seed(0)
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), cache / Path(url).name)
    generator = torch.Generator().manual_seed(0)
    for c, name in enumerate(("circle", "square", "stripes")):
        folder = user_folder / "path/to/images" / name
        folder.mkdir(parents=True)
        for i in range(3):
            pixels = torch.randint(0, 256, (40, 40, 3), dtype=torch.uint8, generator=generator) // (c + 1)
            Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")
    out = _run(VGG_FOLDER, user_folder, {"TORCH_HOME": str(torch_home)}).stdout
    assert "Test results of the best checkpoint" in out
    config = (user_folder / "runs/transfer_vgg16_folder/version_0/config.yaml").read_text()
    assert "num_classes: 3" in config


def test_readme_infer_commands_run_as_written(user_folder, data_dir):
    from PIL import Image
    from torchvision.datasets.mnist import read_image_file

    (user_folder / "my_digits").mkdir()
    for i, image in enumerate(read_image_file(str(data_dir / "MNIST/raw/t10k-images-idx3-ubyte"))[:8]):
        Image.fromarray(image.numpy()).save(user_folder / "my_digits" / f"test_{i:04d}.png")
    table = _run(INFER[0], user_folder, {}).stdout
    shown = re.search(r"```text\n(.*?)```", section("## Predict on your images"), re.S)
    def columns(text):  # image, class and the next classes; the probabilities' last digits vary with torch's version
        return [[line.split()[0], line.split()[1], *line.split()[3::2]] for line in text.strip().splitlines()]

    assert columns(table) == columns(shown.group(1))  # the README shows what the command prints
    assert _run(INFER[1], user_folder, {}).stdout.strip() == "8 predictions written to preds.csv"
    assert (user_folder / "preds.csv").read_text().count("\n") == 1 + 8
    assert _run(INFER[2], user_folder, {}).stdout.strip() == "8 reconstructions written to reconstructions"
    assert sorted(p.name for p in (user_folder / "reconstructions").iterdir()) == [f"test_{i:04d}.png" for i in range(8)]
    assert _run(INFER[3], user_folder, {}).stdout.strip() == "16 samples written to samples"
    assert len(list((user_folder / "samples").glob("sample_*.png"))) == 16
    assert _run(INFER[4], user_folder, {}).stdout.strip() == "16 samples written to sevens"
    sevens = torch.stack([torch.from_numpy(np.array(Image.open(f))).float() / 255
                          for f in sorted((user_folder / "sevens").glob("sample_*.png"))])[:, None]
    judge = zoo.load_pretrained("lenet5_mnist")
    assert (judge(sevens).argmax(1) == 7).sum() >= 15  # the digit asked for
    assert _run(INFER[5], user_folder, {}).stdout.strip() == "16 samples written to fours"
    fours = torch.stack([torch.from_numpy(np.array(Image.open(f))).float() / 255
                         for f in sorted((user_folder / "fours").glob("sample_*.png"))])[:, None]
    assert (judge(fours).argmax(1) == 4).sum() >= 14


def _table_files(folder: Path) -> None:
    """The files the "Your own table" commands name: rows.csv, four rows of the wine table's test split (as
    the README says), and my.csv, a table of the user's own with a price column."""
    import contextlib
    import io

    from zoo.data import TabularDataModule

    with contextlib.redirect_stdout(io.StringIO()):
        test = TabularDataModule(table="wine", test_size=0.2, val_size=0.15).split_frames()["test"]
    rows = test.drop(columns="target").iloc[::9]
    rows.insert(0, "id", rows.index)
    rows.to_csv(folder / "rows.csv", index=False)
    generator = np.random.default_rng(0)
    area = generator.uniform(30, 150, 300)
    district = generator.choice(["north", "south", "centre"], 300)
    price = 2.0 * area + np.where(district == "centre", 80, 0) + generator.normal(0, 10, 300)
    import pandas as pd

    pd.DataFrame({"area": area, "rooms": (area // 25).astype(int), "district": district,
                  "price": price.round(1)}).to_csv(folder / "my.csv", index=False)


@pytest.mark.slow
def test_readme_table_commands_run_as_written(user_folder):
    _table_files(user_folder)
    assert "Test results of the final weights" in _run(TABLE[0], user_folder, {}).stdout
    mine = _run(TABLE[1], user_folder, {}).stdout
    assert "target price -> regression" in mine and "test/mse = " in mine
    config = (user_folder / "runs/mlp_diabetes/version_0/config.yaml").read_text()
    assert "input_shape:\n    - 6" in config or "input_shape: [6]" in config  # area, rooms, 3 districts + missing
    printed = _run(TABLE[2], user_folder, {}).stdout
    shown = re.search(r"```text\n(.*?)```", section("## Your own table"), re.S).group(1)
    def columns(text):  # id and class; the probabilities' last digits vary with torch's version
        return [line.split()[:2] for line in text.strip().splitlines()]

    assert columns(printed) == columns(shown)
    assert [float(line.split()[2]) for line in printed.strip().splitlines()[1:]] == pytest.approx(
        [float(line.split()[2]) for line in shown.strip().splitlines()[1:]], abs=2e-3)
    assert _run(TABLE[3], user_folder, {}).stdout.strip() == "4 predictions written to predictions.csv"
    assert (user_folder / "predictions.csv").read_text().splitlines()[0] == "id,class,probability"


def test_readme_export_commands_and_python_run_as_written(user_folder, capsys, monkeypatch):
    text = section("### Exporting for deployment")
    printed = _run(EXPORT[0], user_folder, {}).stdout
    shown = re.search(r"```text\n(.*?)```", text, re.S).group(1)
    # The differences' last digits vary with torch's version; everything else is printed as shown.
    assert [re.sub(r"batch 1: .*", "", line) for line in printed.splitlines()] == \
        [re.sub(r"batch 1: .*", "", line) for line in shown.splitlines()]
    _run(EXPORT[1], user_folder, {})
    _run(EXPORT[2], user_folder, {})
    assert sorted(p.name for p in user_folder.glob("*.*")) == ["lenet5_mnist.onnx", "lenet5_mnist.pt2", "vae_sampler.onnx"]
    monkeypatch.chdir(user_folder)
    exec(re.search(r"```python\n(.*?)```", text, re.S).group(1), {})
    assert capsys.readouterr().out.strip() == str(["1"] * 3)  # what LeNet-5 makes of a black image


def test_readme_report_commands_run_as_written(user_folder, data_dir):
    env = {"ZOO_DATA_DIR": str(data_dir)}
    text = section("### Evaluation reports and model cards")
    assert _run(REPORT[0], user_folder, env).stdout == re.search(r"```text\n(.*?)```", text, re.S).group(1)
    _run(RUN_IN_ORDER[0], user_folder, env)  # the Run a recipe section's command writes the checkpoint
    printed = _run(REPORT[1], user_folder, env).stdout.splitlines()
    assert printed[0].split() == ["metric", "measured"] and printed[-1] == "report written to my_report/index.html"
    for folder in ("report", "my_report"):
        assert {"metrics.json", "index.html", "confusion_matrix.png"} <= {p.name for p in (user_folder / folder).iterdir()}
    for picture in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (REPO / picture).is_file()


@pytest.mark.slow
def test_readme_serve_commands_and_python_run_as_written(user_folder, data_dir, capsys, monkeypatch):
    """The server on the README's own port, asked with curl and requests as the README shows, about a scan
    of the first MNIST test digit (a 7): dark ink on light paper."""
    import json

    from PIL import Image, ImageOps
    from torchvision.datasets.mnist import read_image_file

    from tests.test_serve import served

    text = section("## Serve over HTTP")
    digit = read_image_file(str(data_dir / "MNIST/raw/t10k-images-idx3-ubyte"))[0].numpy()
    ImageOps.invert(Image.fromarray(digit)).resize((140, 140)).save(user_folder / "digit.png")
    assert SERVE[0].split() == ["zoo", "serve", "lenet5_mnist"] and SERVE[2].split() == ["zoo", "serve", "cgan_mnist"]
    with served("lenet5_mnist", port=8000, cwd=user_folder):
        answer = json.loads(_run(SERVE[1], user_folder, {}).stdout)
        monkeypatch.chdir(user_folder)
        exec(re.search(r"```python\n(.*?)```", text, re.S).group(1), {})
    shown = re.search(r"```text\n(.*?)```", text, re.S).group(1)
    assert answer["predictions"][0]["class"] == "7" and '"class":"7"' in shown
    assert len(answer["predictions"][0]["top_k"]) == 5
    assert capsys.readouterr().out.strip() == "7"
    with served("cgan_mnist", port=8000, cwd=user_folder):
        samples = json.loads(_run(SERVE[3], user_folder, {}).stdout)
    assert len(samples["images"]) == 4 and samples["labels"] == 7
    assert sorted(p.name for p in user_folder.iterdir()) == ["digit.png"]  # the server wrote nothing here


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_every_relative_link_of_the_readme_and_docs_leads_somewhere():
    """Links and pictures of README.md and docs/*.md: the file exists, and a #section is a heading of its page."""
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"\w+://|mailto:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (anchor and (linked.suffix != ".md" or anchor not in _anchors(linked))):
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, broken
    assert {p.name for p in PAGES} >= {"README.md", "models.md", "performance.md", "training.md"}
