"""Two "nodes" on one machine: two `torchrun --nnodes 2 --node_rank {0,1}` launches of `zoo fit
--trainer.num_nodes 2` that meet on a loopback port, as two machines of a cluster would. Each rank
trains on its own shard, and the run ends where a 2-process run on one node ends."""

import os
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from tests.shards import check_shards, read_samples, split_fingerprints
from tests.test_cli import run_zoo
from tests.test_large_folders import FOLDER_RECIPE, noise_folder

pytestmark = [pytest.mark.compat, pytest.mark.slow]  # DDP through torchrun, Lightning and torch.distributed

DIGITS = ["--config", str(REPO / "recipes/lenet5_digits.yaml"), "--data.init_args.shift", "0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def training_split(run_root, name: str):
    """The training split of a run, as its config.yaml builds it."""
    import yaml

    import zoo.data

    config = yaml.safe_load((run_root / f"runs/{name}/version_0/config.yaml").read_text())["data"]
    datamodule = getattr(zoo.data, config["class_path"].rsplit(".", 1)[1])(**config["init_args"])
    datamodule.setup("fit")
    return datamodule.datasets["train"]


def two_nodes(recipe: list[str], cwd, env: dict) -> None:
    """``zoo fit`` on two nodes of one process each, launched by torchrun as each machine would launch it."""
    port = free_port()
    launches = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank),
         "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "zoo.cli", "fit", *recipe,
         "--trainer.num_nodes", "2", "--trainer.devices", "1"],
        cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)]
    outputs = [launch.communicate(timeout=600)[0] for launch in launches]
    for rank, (launch, output) in enumerate(zip(launches, outputs)):
        assert launch.returncode == 0, f"node {rank}:\n{output[-3000:]}"


@pytest.mark.parametrize("data", ["in memory", "decoded on disk"])
def test_two_nodes_shard_the_data_and_end_as_two_processes_on_one_node(data, tmp_path):
    # torchrun gives each process one thread unless told otherwise; one node's processes get the same, so
    # that both sum their floats in the same order.
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    if data == "in memory":
        recipe, name = DIGITS, "lenet5_digits"
    else:
        (tmp_path / "folder.yaml").write_text(FOLDER_RECIPE % (noise_folder(tmp_path / "images", per_class=10), tmp_path / "cache"))
        recipe = ["--config", str(tmp_path / "folder.yaml"), "--data.init_args.shift", "0", "--data.init_args.hflip", "false"]
        name = "folder"
    common = [*recipe, "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.max_epochs", "2",
              "--trainer.deterministic", "true", "--test_after_fit", "false", "--trainer.callbacks+=tests.shards.RecordSamples"]
    (tmp_path / "nodes").mkdir()
    two_nodes([*common, "--trainer.callbacks.folder", str(tmp_path / "nodes/seen")], tmp_path / "nodes", env)
    (tmp_path / "one").mkdir()
    run_zoo("fit", *common, "--trainer.callbacks.folder", str(tmp_path / "one/seen"), "--trainer.devices", "2",
            cwd=tmp_path / "one", env=env)

    seen = read_samples(tmp_path / "nodes/seen")
    check_shards(seen, split_fingerprints(training_split(tmp_path / "nodes", name)), epochs=2)
    assert seen == read_samples(tmp_path / "one/seen")  # the same samples, rank by rank, in the same order, as on one node

    runs = [torch.load(tmp_path / where / f"runs/{name}/version_0/checkpoints/last.ckpt", weights_only=True)
            for where in ("nodes", "one")]
    assert runs[0]["global_step"] == runs[1]["global_step"] > 0
    for key, value in runs[1]["state_dict"].items():
        torch.testing.assert_close(runs[0]["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)
