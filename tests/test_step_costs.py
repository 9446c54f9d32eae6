"""What keeps training steps cheap must not change what is measured or what is checked.

Training metrics are logged once per epoch and step values only on the loggers' steps, and training
inputs are validated on the first batch of each epoch; see benchmarks/overhead.py for the costs. The
zoo command keeps freed memory for reuse (zoo.malloc), which must end the page faults it is for.
"""

import os
import platform
import subprocess
import sys

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

import zoo
from tests.fakes import RandomImages, quiet_trainer
from zoo.data.sequence import NoisySineDataModule
from zoo.malloc import OPT_OUT, USER_SETTINGS
from zoo.models import LeNet5


class _EpochLogs(Callback):
    """The train/ values logged by each epoch (read after the module's on_train_epoch_end has run)."""

    def __init__(self):
        self.logged = []

    def _record(self, trainer):
        self.logged.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch > 0:
            self._record(trainer)

    def on_train_end(self, trainer, pl_module):
        self._record(trainer)


SUPERVISED_KEYS = {"train/acc", "train/loss_epoch"}
GAN_KEYS = {"train/d_loss_epoch", "train/g_loss_epoch", "train/d_real_epoch", "train/d_fake_epoch"}


FORECASTER_KEYS = {"train/mse", "train/naive_mse", "train/loss_epoch"}


def _sine():
    return NoisySineDataModule(length=300, period=30, noise=0.1, window=30, horizon=1, batch_size=32)


@pytest.mark.parametrize("name, hparams, data, keys", [
    ("lenet5", {}, RandomImages, SUPERVISED_KEYS),
    ("lstm", {}, RandomImages, SUPERVISED_KEYS),
    ("lstm_forecaster", dict(horizon=1, input_shape=[30, 1], hidden_size=8), _sine, FORECASTER_KEYS),
    ("ae", {}, RandomImages, {"train/loss_epoch"}),
    ("gan", {}, RandomImages, GAN_KEYS),
])
def test_every_model_logs_its_training_metrics_once_per_epoch(tmp_path, name, hparams, data, keys):
    torch.manual_seed(0)
    callback = _EpochLogs()
    quiet_trainer(tmp_path, max_epochs=2, callbacks=[callback], limit_val_batches=0).fit(
        zoo.create_model(name, **hparams), datamodule=data())
    assert len(callback.logged) == 2
    assert all(epoch.keys() >= keys for epoch in callback.logged), callback.logged


class _Recording(LeNet5):
    """LeNet-5 that records, for every training step, whether each prediction was right, and the loss."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        x, y = batch
        with torch.no_grad():  # no dropout: the same logits the step saw (the weights change after it)
            self.seen.append((self.trainer.current_epoch, self(x).argmax(1) == y, float(loss), len(y)))
        return loss


def test_epoch_training_metrics_are_those_of_the_epochs_steps(tmp_path):
    model = _Recording()
    # State left by an epoch that ended in an exception must not leak into the next fit's numbers.
    model.train_metrics.update(torch.zeros(500, 10), torch.ones(500, dtype=torch.long))
    model.train_loss.update(torch.tensor(1e6), 500)
    callback = _EpochLogs()
    quiet_trainer(tmp_path, max_epochs=2, callbacks=[callback], limit_val_batches=0).fit(model, datamodule=RandomImages())
    for epoch, logged in enumerate(callback.logged):
        steps = [step for step in model.seen if step[0] == epoch]
        assert len(steps) == 3  # RandomImages: 48 training images in batches of 16
        accuracy = torch.cat([correct for _, correct, _, _ in steps]).float().mean().item()
        loss = sum(loss * n for _, _, loss, n in steps) / sum(n for _, _, _, n in steps)
        assert logged["train/acc"] == pytest.approx(accuracy, abs=1e-6)
        assert logged["train/loss_epoch"] == pytest.approx(loss, rel=1e-5)


class _StepsLogged(Logger):
    """A logger that records the step of every ``*_step`` value it is sent."""

    def __init__(self):
        super().__init__()
        self.steps = []

    @property
    def name(self):
        return "steps"

    @property
    def version(self):
        return 0

    def log_metrics(self, metrics, step=None):
        if any(key.endswith("_step") for key in metrics):
            self.steps.append(step)

    def log_hyperparams(self, params, *args, **kwargs):
        pass


class _LogsEveryStep(LeNet5):
    """Logs its loss on every step and leaves the cadence to Lightning: the reference."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train/loss_step", loss, on_step=True, on_epoch=False)
        return loss


@pytest.mark.parametrize("log_every", [1, 2, 4])
@pytest.mark.parametrize("name, hparams", [("lenet5", {}), ("gan", dict(d_steps=2))])  # the GAN: 3 steps a batch
def test_training_step_values_reach_the_loggers_on_lightnings_logging_steps(tmp_path, log_every, name, hparams):
    recorded = {}
    for label, model in (("zoo", zoo.create_model(name, **hparams)), ("reference", _LogsEveryStep())):
        logger = _StepsLogged()
        trainer = L.Trainer(accelerator="cpu", logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=tmp_path, max_epochs=3,
                            limit_val_batches=0, log_every_n_steps=log_every)
        trainer.fit(model, datamodule=RandomImages())
        recorded[label] = logger.steps
    assert recorded["zoo"] == recorded["reference"] and len(recorded["zoo"]) == 9 // log_every


def test_training_inputs_are_checked_on_the_first_batch_of_every_epoch(tmp_path):
    class Scaled(RandomImages):  # 0-255 floats: the first training batch must be refused
        def load_split(self, train):
            x, y = super().load_split(train)
            return x.float(), y

    with pytest.raises(ValueError, match=r"expects values in \[0, 1\], got values in \[0, 255\]"):
        quiet_trainer(tmp_path, max_epochs=1, limit_val_batches=0).fit(zoo.create_model("lenet5"), datamodule=Scaled())

    seen = []

    class Spy(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(pl_module._input_checked_in_training)

    model = zoo.create_model("lenet5")
    quiet_trainer(tmp_path, max_epochs=2, limit_val_batches=0, callbacks=[Spy()]).fit(model, datamodule=RandomImages())
    assert seen == [False, True, True, False, True, True]  # 3 batches per epoch, checked on each epoch's first
    # After training, calls in training mode are checked every time again.
    model.train()
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 1, 28, 28\)"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"expects values in \[0, 1\]"):
        model(torch.full((2, 1, 28, 28), 255.0))


def test_lightnings_nvml_check_is_dropped_only_where_nvml_cannot_load(monkeypatch):
    import ctypes

    from zoo import _cuda_check

    available = torch.cuda.is_available()
    monkeypatch.setenv(_cuda_check.NVML_CHECK, "1")

    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert _cuda_check.drop_unusable_nvml_check() is True
    assert _cuda_check.NVML_CHECK not in os.environ
    assert torch.cuda.is_available() == available  # the answer does not change, only its cost

    monkeypatch.setenv(_cuda_check.NVML_CHECK, "1")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())  # a machine with an NVIDIA driver
    assert _cuda_check.drop_unusable_nvml_check() is False
    assert os.environ[_cuda_check.NVML_CHECK] == "1"

    monkeypatch.setenv(_cuda_check.NVML_CHECK, "0")  # set by the user to something else: theirs to keep
    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert _cuda_check.drop_unusable_nvml_check() is False
    assert os.environ[_cuda_check.NVML_CHECK] == "0"


class _NaNAtStep(LeNet5):
    """LeNet-5 whose training loss turns NaN at global step 3 (epoch 1, batch 0 with RandomImages's 3 batches);
    the NaN weights then make every later loss NaN too."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.global_step == 3 else loss


@pytest.mark.parametrize("checkpoint_every", [None, 1])
def test_deferred_nan_guard_names_the_first_bad_step_and_keeps_the_last_good_checkpoint(tmp_path, checkpoint_every):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from zoo.callbacks import NonFiniteLossError, StopOnNonFiniteLoss

    guard = StopOnNonFiniteLoss(defer=True, check_every_n_steps=4)  # as on a GPU: read every 4 steps
    callbacks = [guard]
    if checkpoint_every:
        callbacks.append(ModelCheckpoint(dirpath=tmp_path, save_top_k=0, save_last=True,
                                         every_n_train_steps=checkpoint_every))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=bool(checkpoint_every), max_epochs=4, limit_val_batches=0,
                        callbacks=callbacks, default_root_dir=tmp_path)
    # Read at the epoch's end (3 NaN steps later) or before the checkpoint write; the first one is named.
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at global step 4 \(epoch 1, batch 0\)"):
        trainer.fit(_NaNAtStep(), datamodule=RandomImages())
    if checkpoint_every:  # the check before each write kept the NaN step out of last.ckpt
        last = torch.load(tmp_path / "last.ckpt", weights_only=True)
        assert last["global_step"] == 3
        assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    with pytest.raises(ValueError, match="check_every_n_steps must be >= 1"):
        StopOnNonFiniteLoss(check_every_n_steps=0)


_FAULTS_PER_STEP = """
import ctypes, resource
import zoo.malloc
applied = zoo.malloc.keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 900_000
def step():  # like a training step: blocks of up to the largest size yet, written to, all freed at its end
    blocks = [libc.malloc(SIZE) for _ in range(16)]
    for block in blocks:
        ctypes.memset(block, 1, SIZE)
    for block in blocks:
        libc.free(block)
libc.free(libc.malloc(1_000_000))  # freeing a block of its own mapping raises glibc's adaptive thresholds
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults_per_step(**env) -> tuple[str, float]:
    ignored = {OPT_OUT, "GLIBC_TUNABLES", *USER_SETTINGS}  # only the settings given here count
    environment = {k: v for k, v in os.environ.items() if k not in ignored}
    result = subprocess.run([sys.executable, "-c", _FAULTS_PER_STEP], env={**environment, **env},
                            capture_output=True, text=True, check=True)
    applied, faults = result.stdout.split()
    return applied, float(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_kept_freed_memory_ends_the_page_faults_of_each_step():
    applied, faults = _faults_per_step()
    assert applied == "True" and faults < 5
    applied, faults = _faults_per_step(ZOO_SYSTEM_MALLOC="1")
    assert applied == "False" and faults > 3000  # glibc's defaults return the step's 14 MB: 3,500 pages
    applied, _ = _faults_per_step(MALLOC_TRIM_THRESHOLD_="1000000")
    assert applied == "False"  # the user's own tuning is left alone


def test_the_zoo_command_keeps_freed_memory(monkeypatch, capsys):
    import zoo.cli
    import zoo.runtime

    calls = []
    monkeypatch.setattr(zoo.runtime, "keep_freed_memory", lambda: calls.append(1))
    zoo.runtime.apply_console_settings()  # what the console script applies (tests/test_runtime.py)
    assert calls == [1]
    assert zoo.cli.main(["list"]) == 0  # main, as Python calls it, leaves malloc as it is
    assert calls == [1]


def test_progress_bar_redraws_at_its_rate_and_always_the_last_batch_of_an_epoch(tmp_path, monkeypatch):
    from lightning.pytorch.callbacks import RichProgressBar

    from zoo.callbacks import ProgressBar

    drawn = []
    monkeypatch.setattr(RichProgressBar, "on_train_batch_end",
                        lambda self, trainer, pl_module, outputs, batch, batch_idx: drawn.append(batch_idx))
    bar = ProgressBar(redraws_per_second=1e-3)  # one redraw in 1,000 s: the first batch and the last of each epoch
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, default_root_dir=tmp_path, callbacks=[bar])
    trainer.fit(LeNet5(), datamodule=RandomImages())
    assert drawn == [0, 2, 2]  # 48 training images in batches of 16, two epochs
