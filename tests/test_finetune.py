"""Fine-tuning strategies: trainable sets, frozen batch norm, discriminative rates, gradual unfreezing
across a resume and under 2-process DDP, and the label-budget data of the transfer experiment."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

import zoo
from tests.conftest import REPO
from tests.fakes import RandomImages, quiet_trainer
from tests.test_cli import run_zoo
from zoo.data.subset import LabelBudgetDataModule
from zoo.finetune import GradualUnfreezing

TINY = dict(width_divisor=16, hidden_size=16, pooled_size=1, image_size=32, num_classes=10)
# vgg11_bn features: the conv (and its BN) indices of each of the five stages, read off torchvision's layout
STAGE_LAYERS = {1: (0, 1), 2: (4, 5), 3: (8, 9, 11, 12), 4: (15, 16, 18, 19), 5: (22, 23, 25, 26)}


def _vgg(**kwargs):
    torch.manual_seed(0)
    return zoo.create_model("vgg11_bn", **TINY, **kwargs)


def _names(model, stages):
    layers = {f"net.features.{i}." for s in stages for i in STAGE_LAYERS[s]}
    classifier = {n for n, _ in model.named_parameters() if n.startswith("net.classifier.")}
    return classifier | {n for n, _ in model.named_parameters() if any(n.startswith(p) for p in layers)}


@pytest.mark.parametrize("strategy, stages", [
    ("full", (1, 2, 3, 4, 5)),
    ("feature_extractor", ()),
    ("top1", (5,)),
    ("top2", (4, 5)),
    ("gradual", ()),
])
def test_each_strategy_trains_exactly_its_parameters(strategy, stages):
    model = _vgg(finetune=strategy)
    assert model.finetuning.num_stages == 5
    assert model.finetuning.trainable_parameter_names(model) == _names(model, stages)
    requiring_grad = {n for n, p in model.named_parameters() if p.requires_grad}
    # gradual keeps requires_grad everywhere (DDP fixes that set when it wraps the model)
    assert requiring_grad == (set(dict(model.named_parameters())) if strategy == "gradual" else _names(model, stages))


class _Probe(L.Callback):
    """Records, at the first batch of each epoch, the frozen count and the modes of the batch norms."""

    def __init__(self):
        self.frozen, self.bn_training = {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.frozen[trainer.current_epoch] = pl_module.finetuning.frozen_stages
            self.bn_training[trainer.current_epoch] = [m.training for m in pl_module.net.features
                                                       if isinstance(m, torch.nn.BatchNorm2d)]


def test_static_strategy_updates_only_its_parameters_and_keeps_frozen_bn_in_eval(tmp_path):
    model = _vgg(finetune="top1")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    bns = [m for m in model.net.features if isinstance(m, torch.nn.BatchNorm2d)]
    assert [m.training for m in bns] == [False] * 6 + [True] * 2  # stage 5 has the last two
    probe = _Probe()
    quiet_trainer(tmp_path, max_epochs=2, callbacks=[probe]).fit(model, datamodule=RandomImages(shape=(3, 32, 32)))
    assert probe.bn_training == {0: [False] * 6 + [True] * 2, 1: [False] * 6 + [True] * 2}
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    trainable = model.finetuning.trainable_parameter_names(model)
    assert trainable <= changed
    frozen_state = {k for k in before if k.startswith("net.features.") and k.rsplit(".", 1)[0] + ".weight" not in trainable}
    assert not frozen_state & changed  # frozen weights and BN running statistics untouched


def test_backbone_learns_at_the_scaled_rate(tmp_path):
    model = _vgg(finetune="full", backbone_lr_scale=0.1, lr=0.01)
    trainer = quiet_trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(model, datamodule=RandomImages(shape=(3, 32, 32)))
    groups = trainer.optimizers[0].param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.001, 0.01])
    backbone = {id(p) for n, p in model.named_parameters() if n.startswith("net.features.")}
    assert {id(p) for p in groups[0]["params"]} == backbone


def _fit_gradual(tmp_path, max_epochs, ckpt_path=None):
    model = _vgg(finetune="gradual", unfreeze_every=1, lr=0.01)
    probe = _Probe()
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        max_epochs=max_epochs, limit_val_batches=0, default_root_dir=tmp_path,
                        callbacks=[probe, ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)])
    trainer.fit(model, datamodule=RandomImages(shape=(3, 32, 32)), ckpt_path=ckpt_path)
    return model, probe


def test_gradual_unfreezing_schedule_survives_a_resume(tmp_path):
    initial = _vgg(finetune="gradual").state_dict()
    model, probe = _fit_gradual(tmp_path, max_epochs=2)
    assert probe.frozen == {0: 5, 1: 4}
    assert probe.bn_training[1] == [False] * 6 + [True] * 2
    state = model.state_dict()
    assert torch.equal(state["net.features.0.weight"], initial["net.features.0.weight"])  # stage 1: frozen throughout
    assert not torch.equal(state["net.features.22.weight"], initial["net.features.22.weight"])  # stage 5: unfrozen at epoch 1

    last = tmp_path / "ckpt" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=False)
    key = GradualUnfreezing(1).state_key
    assert checkpoint["callbacks"][key] == {"unfrozen": 1}
    _, resumed = _fit_gradual(tmp_path / "a", max_epochs=4, ckpt_path=last)
    assert resumed.frozen == {2: 3, 3: 2}  # continues; a fresh model would start with all 5 frozen

    # The count comes from the checkpoint, not only from the epoch: a state ahead of the schedule is kept.
    checkpoint["callbacks"][key] = {"unfrozen": 4}
    torch.save(checkpoint, tmp_path / "ahead.ckpt")
    _, ahead = _fit_gradual(tmp_path / "b", max_epochs=3, ckpt_path=tmp_path / "ahead.ckpt")
    assert ahead.frozen == {2: 1}


@pytest.mark.slow
def test_gradual_unfreezing_under_two_process_ddp(in_tmp):
    """lenet5_mnist -> digits with gradual unfreezing: the block unfrozen at epoch 1 trains, the other stays put."""
    run_zoo(
        "fit", "--model", "zoo.models.LeNet5", "--weights", "lenet5_mnist", "--new_head", "true",
        "--model.finetune", "gradual", "--model.unfreeze_every", "1", "--model.lr", "0.003",
        "--data", "zoo.data.DigitsDataModule", "--data.batch_size", "64", "--seed_everything", "1",
        "--trainer.max_epochs", "2", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
        "--trainer.strategy", "ddp", "--trainer.enable_progress_bar", "false", "--default_callbacks", "false",
        "--trainer.logger", "false", "--trainer.default_root_dir", str(in_tmp),
        cwd=in_tmp, timeout=120,
    )
    (last,) = (in_tmp / "checkpoints").glob("*.ckpt")
    state = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    source = zoo.load_pretrained("lenet5_mnist").state_dict()
    assert torch.equal(state["net.features.0.weight"], source["net.features.0.weight"])  # still frozen at epoch 1
    assert not torch.equal(state["net.features.3.weight"], source["net.features.3.weight"])  # unfrozen at epoch 1
    assert not torch.equal(state["net.classifier.1.weight"], source["net.classifier.1.weight"])


def test_label_budget_is_balanced_seeded_and_disjoint(data_dir):
    def split(seed):
        dm = LabelBudgetDataModule("fashion_mnist", train_size=1000, val_size=500, data_dir=str(data_dir), seed=seed)
        dm.setup("fit")
        return dm

    dm = split(0)
    train, val = dm.datasets["train"], dm.datasets["val"]
    assert len(train) == 1000 and len(val) == 500 and dm.num_classes == 10
    assert torch.bincount(torch.cat([train.y, val.y])).tolist() == [150] * 10
    pairs = {(x.sum().item(), int(y)) for x, y in zip(train.x, train.y)}
    assert not pairs & {(x.sum().item(), int(y)) for x, y in zip(val.x, val.y)}
    assert torch.equal(split(0).datasets["train"].x, train.x)
    assert not torch.equal(split(1).datasets["train"].x, train.x)


def test_transfer_recipes_share_their_budget():
    import yaml

    transfer = yaml.safe_load((REPO / "recipes/transfer_lenet5_fashionmnist.yaml").read_text())
    scratch = yaml.safe_load((REPO / "recipes/transfer_scratch_fashionmnist.yaml").read_text())
    assert transfer["data"] == scratch["data"] and transfer["trainer"]["max_epochs"] == scratch["trainer"]["max_epochs"]
    shared = ("optimizer", "lr", "weight_decay", "scheduler", "num_classes")
    assert {k: transfer["model"]["init_args"][k] for k in shared} == {k: scratch["model"]["init_args"][k] for k in shared}
    assert transfer["weights"] == "lenet5_mnist" and transfer["model"]["class_path"] == scratch["model"]["class_path"]


def test_folder_recipe_names_real_arguments():
    import inspect

    import yaml

    from zoo.data.folder import ImageFolderDataModule
    from zoo.models.vgg import VGG
    from zoo.models.supervised import SupervisedModule

    recipe = yaml.safe_load((REPO / "recipes/transfer_vgg16_folder.yaml").read_text())
    model_args = set(inspect.signature(VGG).parameters) | set(inspect.signature(SupervisedModule).parameters)
    assert set(recipe["model"]["init_args"]) <= model_args
    inspect.signature(ImageFolderDataModule).bind(**recipe["data"]["init_args"])
