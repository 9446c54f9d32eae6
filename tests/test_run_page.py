"""The run page every `zoo fit` writes (report.html in the run folder), `zoo report RUN_DIR` and `zoo compare`."""

import re
import shutil
import subprocess

from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback
from PIL import Image

from tests.commands import zoo_command
from tests.test_report import _chromium
from zoo.runs import read_metrics

pytestmark = pytest.mark.compat  # the CSV logger's metrics.csv and the order of Lightning's hooks


class PageAtSecondEpoch(Callback):
    """Copies the run page as the second epoch starts, to see what the first epoch's end wrote."""

    def __init__(self, copy_to: str) -> None:
        self.copy_to = copy_to

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        page = Path(trainer.log_dir) / "report.html"
        if trainer.current_epoch == 1:
            shutil.copy(page, self.copy_to) if page.is_file() else Path(self.copy_to).write_text("no page yet")


SHORT = ["--config", "lenet5_digits", "--trainer.max_epochs", "3", "--test_after_fit", "false",
         "--trainer.enable_progress_bar", "false"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two 3-epoch runs of the digits recipe that differ in their learning rate: version_0 and version_1."""
    folder = tmp_path_factory.mktemp("user")
    snapshot = ["--trainer.callbacks+=tests.test_run_page.PageAtSecondEpoch",
                f"--trainer.callbacks.init_args.copy_to={folder / 'page_at_epoch_1.html'}"]
    for lr, extra in (("0.002", snapshot), ("0.01", [])):
        result = zoo_command("fit", *SHORT, "--model.init_args.lr", lr, *extra, cwd=folder)
        assert result.returncode == 0, result.stderr[-3000:]
    runs = folder / "runs" / "lenet5_digits"
    return folder, runs / "version_0", runs / "version_1"


def test_every_fit_writes_its_page_with_every_metric_the_best_epoch_the_confusion_matrix_and_the_config(two_runs):
    run = two_runs[1]
    page = (run / "report.html").read_text()
    curves, _ = read_metrics(run / "metrics.csv")
    assert {"train/loss", "val/loss", "train/acc", "val/acc"} <= set(curves)
    for key in curves:  # every logged metric is named in the page's table
        assert key in page or key.startswith("lr")
    values = curves["val/acc"]
    best = min(e for e, v in values.items() if v == max(values.values()))  # ModelCheckpoint keeps the first best
    assert f"best checkpoint</td><td>epoch {best}</td>" in page
    assert (run / "checkpoints" / f"best-epoch{best:03d}-val_acc{values[best]:.4f}.ckpt").is_file()
    assert "<h2>Confusion matrix</h2>" in page and "144 validation images" in page
    assert "class_path: zoo.models.LeNet5" in page and "max_epochs: 3" in page  # the resolved config
    assert "<h2>Learning rate and time per epoch</h2>" in page and " s per epoch" in page
    # self-contained: nothing fetched, no script, every picture inlined
    assert "http" not in page.replace("http-equiv", "") and "<script" not in page
    assert re.findall(r"src='([^']*)'", page) and all(src.startswith("data:image/png;base64,")
                                                      for src in re.findall(r"src='([^']*)'", page))


def test_a_short_run_draws_its_page_once_at_the_end(two_runs):
    """Epochs of a fraction of a second: drawing the page at each would cost more than 3 % of the run."""
    assert (two_runs[0] / "page_at_epoch_1.html").read_text() == "no page yet"
    final = (two_runs[1] / "report.html").read_text()
    assert "still running" not in final and "3 epochs (0 to 2)" in final


def test_the_page_is_written_during_training_when_the_budget_allows(tmp_path):
    """The page as it was when the second epoch started: the first epoch drawn, the run still going."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    import zoo
    from zoo.callbacks import RunPage

    copy = tmp_path / "page_at_epoch_1.html"
    every_epoch = RunPage(max_share=1.0)
    every_epoch.FIRST_DRAWING_SECONDS = 0.0  # as if drawing were free: the budget allows the first epoch's page
    trainer = L.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=2, accelerator="cpu",
                        logger=CSVLogger(tmp_path, name="run"), enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[every_epoch, PageAtSecondEpoch(str(copy))])
    trainer.fit(zoo.create_model("lenet5"), datamodule=zoo.create_datamodule("digits", batch_size=32))
    page = copy.read_text()
    assert "still running when this page was written" in page and "1 epoch (0 to 0)" in page
    assert "<h2>Loss and metrics by epoch</h2>" in page and "val/acc" in page
    assert "<h2>Confusion matrix</h2>" not in page  # that of the best epoch, shown when training ends
    assert "<h2>Confusion matrix</h2>" in (tmp_path / "run" / "version_0" / "report.html").read_text()


def test_a_real_browser_shows_the_page(two_runs, tmp_path):
    chromium = _chromium()
    shot = tmp_path / "page.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1100,2400", (two_runs[1] / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    picture = Image.open(shot).convert("RGB")
    assert picture.size == (1100, 2400)
    assert len(picture.getcolors(maxcolors=1 << 20)) > 1000  # text, tables and plots: not blank or broken
    curves = picture.crop((40, 420, 1000, 780))  # where the loss and accuracy panels are drawn
    coloured = sum(1 for count, (r, g, b) in curves.getcolors(1 << 20) if abs(r - g) > 60 or abs(g - b) > 60)
    assert coloured > 10  # the training and validation lines


def test_the_confusion_matrix_counted_during_validation_is_the_best_checkpoints(two_runs):
    """The page's matrix comes from the best epoch's own validation pass; measured again from the best
    checkpoint on the validation split, it is the same."""
    import json

    from zoo.checkpointing import model_from_checkpoint
    from zoo.report import _datamodule_from, confusion_matrix

    run = two_runs[1]
    recorded = json.loads((run / "run.json").read_text())["confusion"]
    model = model_from_checkpoint(run / "checkpoints" / recorded["checkpoint"]).eval()
    datamodule = _datamodule_from(run / "config.yaml", None)
    datamodule.setup("fit")
    matrix, names = confusion_matrix(model, datamodule.val_dataloader())
    assert recorded["matrix"] == matrix and recorded["class_names"] == names


def test_zoo_report_writes_the_same_page_from_the_files_alone(two_runs, tmp_path):
    folder, run = two_runs[0], two_runs[1]
    copy = _copy_run(run, tmp_path)
    (copy / "report.html").unlink()
    result = zoo_command("report", str(copy), cwd=folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"run page written to {copy / 'report.html'}"
    again = (copy / "report.html").read_text()
    original = (run / "report.html").read_text()
    # The same page but for the folder it names and the bytes of the PNGs (matplotlib's metadata may vary).
    strip = lambda page: re.sub(r"base64,[^']*|zoo report [^<]*", "", page)  # noqa: E731
    assert strip(again) == strip(original)
    # the curves, the learning rate and epoch times, the layer dynamics, the confusion matrix
    assert again.count("data:image/png;base64,") == original.count("data:image/png;base64,") == 4


def test_zoo_compare_overlays_both_runs_and_lists_the_setting_that_differs(two_runs, tmp_path):
    folder, first, second = two_runs
    output = tmp_path / "compare.html"
    result = zoo_command("compare", str(first), str(second), "--output", str(output), cwd=folder)
    assert result.returncode == 0, result.stderr
    page = output.read_text()
    row = re.search(r"<tr><td>model\.init_args\.lr</td>(.*?)</tr>", page).group(1)
    assert "0.002" in row and "0.01" in row
    assert page.count("<tr><td>") >= 3  # that setting, and one row of best metrics per run
    assert "lenet5_digits/version_0" in page and "lenet5_digits/version_1" in page
    assert "run_name" not in page  # the same recipe: the same run name
    assert "<script" not in page and page.count("data:image/png;base64,") == 1


def _copy_run(run, folder):
    copy = folder / run.parent.name / run.name
    shutil.copytree(run, copy)
    return copy


def test_the_recorded_layer_dynamics_are_drawn_and_a_run_without_them_says_so(two_runs, tmp_path):
    run = _copy_run(two_runs[1], tmp_path)
    fit_page = (two_runs[1] / "report.html").read_text()
    assert "did not record layer dynamics" not in fit_page and "weight norm and gradient norm" in fit_page
    recorded = (run / "dynamics.csv").read_text()  # what zoo fit's TrainingDynamics wrote
    (run / "dynamics.csv").unlink()  # as in the folder of a run made before the zoo recorded them
    assert zoo_command("report", str(run), cwd=tmp_path).returncode == 0
    before = (run / "report.html").read_text()
    assert "This run did not record layer dynamics" in before
    (run / "dynamics.csv").write_text(recorded)
    assert zoo_command("report", str(run), cwd=tmp_path).returncode == 0
    after = (run / "report.html").read_text()
    assert "did not record layer dynamics" not in after
    assert after.count("data:image/png;base64,") == before.count("data:image/png;base64,") + 1
    assert "weight norm and gradient norm" in after


@pytest.mark.parametrize("args, expected", [
    (["report", "."], r"\. is not a run folder: a run folder is where one `zoo fit` wrote its config\.yaml and metrics\.csv"),
    (["report", "runs"], r"Runs under it: runs/lenet5_digits/version_0, runs/lenet5_digits/version_1"),
    (["compare", "runs/lenet5_digits/version_0"], r"give at least two run folders"),
])
def test_mistakes_with_runs_get_one_line(two_runs, args, expected):
    result = zoo_command(*args, cwd=two_runs[0])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(expected, result.stderr.splitlines()[0]), result.stderr


def test_runs_with_no_metric_in_common_are_refused(two_runs, tmp_path):
    other = _copy_run(two_runs[1], tmp_path)
    (other / "metrics.csv").write_text("epoch,step,val/mse\n0,10,0.5\n")
    result = zoo_command("compare", str(two_runs[1]), str(other), cwd=tmp_path)
    assert result.returncode == 2 and re.search(r"the runs have no metric in common", result.stderr), result.stderr
