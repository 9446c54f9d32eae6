"""A real 2-process DDP fit on CPU (gloo), launched the way a user launches it: through `zoo fit`."""

import csv
import os
import subprocess
import time

import pytest

from tests.conftest import REPO
from tests.test_cli import ZOO, run_zoo

pytestmark = pytest.mark.compat  # DDP through Lightning and torch.distributed


@pytest.mark.slow
def test_two_process_ddp_fit_writes_one_checkpoint_set(in_tmp):
    out = run_zoo(
        "fit", "--config", str(REPO / "recipes/lenet5_digits.yaml"),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_epochs", "3",
        cwd=in_tmp,
    )
    assert "Test results of the best checkpoint" in out  # printed by rank zero only
    assert out.count("Test results of the best checkpoint") == 1
    versions = list((in_tmp / "runs" / "lenet5_digits").iterdir())
    assert [v.name for v in versions] == ["version_0"]
    checkpoints = sorted(p.name for p in (versions[0] / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and checkpoints[1] == "last.ckpt"
    with open(versions[0] / "metrics.csv") as f:
        epochs = {row["epoch"] for row in csv.DictReader(f) if row.get("val/acc")}
    assert epochs == {"0", "1", "2"}
    # what rank zero alone records of the run: the layer dynamics once per epoch, and the run page
    with open(versions[0] / "dynamics.csv") as f:
        rows = [(row["epoch"], row["layer"], row["quantity"]) for row in csv.DictReader(f)]
    assert {epoch for epoch, _, _ in rows} == {"0", "1", "2"} and len(rows) == len(set(rows))
    page = (versions[0] / "report.html").read_text()
    assert "3 epochs (0 to 2)" in page and "Confusion matrix" in page


@pytest.mark.slow
def test_a_dead_rank_fails_the_job_within_the_timeout(in_tmp):
    started = time.monotonic()
    result = subprocess.run(
        [*ZOO, "fit", "--config", str(REPO / "recipes/lenet5_digits.yaml"),
         "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
         "--ddp_timeout", "15", "--trainer.callbacks+=tests.killer.SigkillRankAtStep", "--trainer.callbacks.step", "3"],
        cwd=in_tmp, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=240,
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < 120, f"the surviving rank took {elapsed:.0f} s to give up"


@pytest.mark.slow
def test_two_process_ddp_fit_of_a_table_shards_its_rows(in_tmp):
    """The table recipe under DDP: each process reads the table and fits the same preprocessing, trains on its
    half of the rows (2 batches of 32 of the 115 training rows per epoch, not 4), and rank zero alone speaks."""
    import torch

    out = run_zoo("fit", "--config", "mlp_wine", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
                  "--trainer.strategy", "ddp", "--trainer.max_epochs", "3", cwd=in_tmp)
    assert out.count("Test results of the final weights") == 1
    assert out.count("target target -> classification into 3 classes") == 1
    folder = in_tmp / "runs" / "mlp_wine" / "version_0"
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3 * 2
    assert checkpoint["hyper_parameters"]["input_table"]["target"]["classes"] == ["class_0", "class_1", "class_2"]
