"""Frozen features computed once (zoo.callbacks.FrozenFeatures): the same run as without the cache, the
frozen layers run once per image, what is not cached and why, checkpoints and resumes, the command's switch."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

import zoo
from tests.commands import zoo_command
from tests.fakes import RandomImages, quiet_trainer
from zoo.callbacks import FrozenFeatures
from zoo.callbacks.frozen import refusal

TINY = dict(width_divisor=16, hidden_size=16, pooled_size=1, image_size=32, num_classes=10)  # dropout 0.5 in FC6, FC7


class Epochs(L.Callback):
    """Every logged value at each validation's end, and how many images went through the first conv layer."""

    def __init__(self, model):
        self.rows, self.images = [], 0
        model.net.features[0].register_forward_hook(lambda module, inputs, output: self.count(len(output)))

    def count(self, n):
        self.images += n

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.rows.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def _fit(tmp_path, finetune, cache, max_epochs=3, ckpt_path=None, callbacks=()):
    L.seed_everything(0, verbose=False)
    model = zoo.create_model("vgg11_bn", finetune=finetune, **TINY)
    epochs, frozen = Epochs(model), FrozenFeatures()
    data = RandomImages(shape=(3, 32, 32))  # 48 training and 16 validation images, one batch of them each
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=bool(callbacks), enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, max_epochs=max_epochs,
                        callbacks=[epochs, *([frozen] if cache else []), *callbacks])
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return model, data, epochs, frozen


@pytest.mark.parametrize("finetune, cached_stages", [("feature_extractor", 5), ("top2", 3)])
def test_cached_run_computes_what_the_uncached_run_computes(tmp_path, finetune, cached_stages):
    L.seed_everything(0, verbose=False)
    initial = zoo.create_model("vgg11_bn", finetune=finetune, **TINY).state_dict()  # as _fit builds it
    plain, _, plain_epochs, _ = _fit(tmp_path, finetune, cache=False, max_epochs=2)
    model, data, epochs, frozen = _fit(tmp_path, finetune, cache=True, max_epochs=2)
    assert model.frozen_front() is not None and model.finetuning.cacheable_stages() == cached_stages
    assert frozen.cached == 48
    # The same batches, head and dropout masks: every logged value of every epoch, and the weights.
    assert len(epochs.rows) == 2 and epochs.rows[0].keys() == plain_epochs.rows[0].keys()
    for mine, theirs in zip(epochs.rows, plain_epochs.rows):
        assert mine == pytest.approx(theirs, rel=1e-5)
    state, plain_state = model.state_dict(), plain.state_dict()
    for key in state:
        torch.testing.assert_close(state[key], plain_state[key], rtol=1e-5, atol=1e-6, msg=key)
    assert not torch.equal(state["net.classifier.6.weight"], initial["net.classifier.6.weight"])  # it trained
    frozen_keys = [k for k in state if k.startswith("net.features.1.")]  # stage 1's conv and batch norm
    assert all(torch.equal(state[k], initial[k]) for k in frozen_keys)  # running statistics untouched too
    # The first conv layer saw each image once (the sanity check's batch is the validation set), not every epoch.
    assert epochs.images == 48 + 16
    assert plain_epochs.images == 16 + 2 * (48 + 16)
    # After fit, the DataModule holds its images again and the model takes them.
    assert data.datasets["train"].x.dtype == torch.uint8
    x = data.datasets["val"][0:4][0]
    model.eval()
    torch.testing.assert_close(model(x), plain.eval()(x))


def test_what_is_not_cached(tmp_path):
    def front(name, **kwargs):
        return zoo.create_model(name, **kwargs).frozen_front()

    assert front("vgg11_bn", finetune="full", **TINY) is None
    # gradual: its frozen stages thaw after unfreeze_every epochs, so they are not frozen for the whole fit
    assert front("vgg11_bn", finetune="gradual", **TINY) is None
    # an MLP's hidden layers hold its dropout: a new mask every step
    assert front("mlp", finetune="feature_extractor", dropout=0.2) is None
    assert front("mlp", finetune="feature_extractor", dropout=0.0) is not None

    augmented = RandomImages(shape=(3, 32, 32), hflip=True, shift=2)
    augmented.setup("fit")
    reason = refusal(quiet_trainer(tmp_path), augmented)
    assert "augmented (shift 2: random shifts of up to 2 pixels and hflip: random horizontal flips)" in reason
    class Jitter(RandomImages):  # augments in its own way and says nothing of it
        def augment(self, x):
            return x + 0.01 * torch.randn_like(x)

    jittered = Jitter(shape=(3, 32, 32))
    jittered.setup("fit")
    assert "augmented (Jitter.augment)" in refusal(quiet_trainer(tmp_path), jittered)
    ddp = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, default_root_dir=tmp_path)
    assert "distributed" in refusal(ddp, RandomImages())
    plain = RandomImages()
    plain.setup("fit")
    assert refusal(quiet_trainer(tmp_path), plain) is None

    L.seed_everything(0, verbose=False)
    model = zoo.create_model("vgg11_bn", finetune="feature_extractor", **TINY)
    frozen = FrozenFeatures()
    quiet_trainer(tmp_path, max_epochs=1, callbacks=[frozen]).fit(model, datamodule=augmented)
    assert frozen.cached == 0


def test_checkpoints_hold_the_plain_model_and_a_resumed_run_caches_again(tmp_path):
    saving = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    model, *_ = _fit(tmp_path, "feature_extractor", cache=True, max_epochs=2, callbacks=[saving])
    checkpoint = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    fresh = zoo.create_model("vgg11_bn", finetune="feature_extractor", **TINY).state_dict()
    assert {k: v.shape for k, v in checkpoint["state_dict"].items()} == {k: v.shape for k, v in fresh.items()}
    model.save_pretrained(tmp_path / "weights")
    assert zoo.load_pretrained(tmp_path / "weights").state_dict().keys() == fresh.keys()

    resumed, _, epochs, frozen = _fit(tmp_path, "feature_extractor", cache=True, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert frozen.cached == 48 and len(epochs.rows) == 1  # the third epoch, from the cache computed again
    straight, *_ = _fit(tmp_path, "feature_extractor", cache=True)
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("extra, line", [
    ((), "Frozen features: not cached, the training images are augmented (shift 2: random shifts of up to 2 pixels)"),
    (("--data.init_args.shift", "0"), "Frozen features: the frozen layers' outputs for the 1294 training images computed once"),
    (("--data.init_args.shift", "0", "--cache_features", "false"), None),
])
def test_zoo_fit_says_once_what_it_caches(tmp_path, caplog, extra, line):
    with caplog.at_level("INFO"):  # Lightning's log lines, which the zoo command prints
        result = zoo_command("fit", "--config", "lenet5_digits", "--model.init_args.finetune", "feature_extractor",
                             "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                             "--trainer.limit_val_batches", "2", "--test_after_fit", "false",
                             "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path), *extra,
                             cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr + caplog.text
    assert output.count("Frozen features") == (0 if line is None else 1), output[-3000:]
    if line is not None:
        assert line in output


@pytest.mark.slow
def test_ddp_fit_trains_from_the_images_and_says_why(tmp_path):
    """Under 2-process DDP each epoch deals each process other images: no cache, one line that says so."""
    import subprocess

    from tests.test_cli import ZOO

    result = subprocess.run(
        [*ZOO, "fit", "--config", "lenet5_digits", "--model.init_args.finetune", "feature_extractor",
         "--data.init_args.shift", "0", "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu",
         "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.enable_progress_bar", "false",
         "--test_after_fit", "false", "--trainer.default_root_dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert output.count("Frozen features: not cached, the run is distributed") == 1, output[-3000:]
