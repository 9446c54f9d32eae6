"""What training did to each layer, recorded every epoch of every run at a small cost.

:class:`TrainingDynamics` writes ``dynamics.csv`` in the run folder (the logger's ``log_dir``, next to
``metrics.csv``), one row per epoch, layer and quantity::

    epoch,step,layer,quantity,value
    0,28,net.features.0,weight_norm,2.7183
    0,28,net.features.0,grad_norm,0.0457
    0,28,net.features.1,dead_share,0.1667

- ``weight_norm``: the L2 norm of a layer's weights (its parameters named ``weight...``; all its
  parameters if none is), at the end of the epoch;
- ``grad_norm``: the L2 norm of the gradient of all the layer's parameters, averaged over the
  training steps it sampled (every ``grad_every_n_steps``-th optimizer step);
- ``dead_share``: for an activation layer (ReLU, GELU, Tanh, Sigmoid, ... as modules), the share of its
  units that are dead on a fixed validation batch: a unit (a channel of a conv feature map, a feature
  of a linear layer) outputs <= 0 (the ReLU family) or saturates (``|tanh| > 0.99``, sigmoid below
  0.01 or above 0.99) for every example of the batch, at every position.

Layers are named by their module path (``net.features.0``). With a TensorBoard or W&B logger it also
logs a histogram of each layer's weights and of each activation layer's outputs on the fixed batch.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from zoo.models.base import ZooModule

DYNAMICS_FILE = "dynamics.csv"
COLUMNS = ("epoch", "step", "layer", "quantity", "value")
# dead: outputs <= 0 for every example
RELU_FAMILY = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
               nn.Mish, nn.Hardswish)
SATURATING = (nn.Tanh, nn.Sigmoid)  # dead: saturated for every example
HISTOGRAM_VALUES = 1 << 18  # activation values per histogram at most: an even spread of them beyond that


def dead_units(module: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """Which units of an activation layer's ``output`` are dead on this batch, (units,) bools.

    Units are the features of (N, F) and (N, T, F) outputs, the channels of (N, C, H, W) ones.
    """
    if isinstance(module, nn.Tanh):
        stuck = output.abs() > 0.99
    elif isinstance(module, nn.Sigmoid):
        stuck = (output < 0.01) | (output > 0.99)
    else:
        stuck = output <= 0
    units = stuck.movedim(1, -1) if stuck.ndim >= 4 else stuck  # units last
    return units.reshape(-1, units.shape[-1]).all(dim=0)


def _weights(module: nn.Module) -> list[nn.Parameter]:
    own = dict(module.named_parameters(recurse=False))
    named_weight = [p for name, p in own.items() if name.startswith("weight")]
    return named_weight or list(own.values())


def drawing_loggers(trainer) -> tuple[list, list]:
    """The trainer's TensorBoard and W&B loggers."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    return ([logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)],
            [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)])


def log_histograms(trainer, values: dict[str, torch.Tensor]) -> None:
    """Send ``{tag: values}`` as histograms to the trainer's TensorBoard and W&B loggers."""
    tensorboards, wandbs = drawing_loggers(trainer)
    for logger in tensorboards:
        for tag, value in values.items():
            logger.experiment.add_histogram(tag, value, global_step=trainer.global_step)
    if wandbs:
        import wandb

        histograms = {tag: wandb.Histogram(value.numpy()) for tag, value in values.items()}
        for logger in wandbs:
            logger.log_metrics(histograms, step=trainer.global_step)


class TrainingDynamics(Callback):
    """Per epoch and layer: weight norm, sampled gradient norm and dead-unit share, in ``dynamics.csv``
    (see the module's doc); histograms of weights and activations for TensorBoard and W&B.

    Only rank zero measures and writes (after DDP's all-reduce its gradients are every rank's). A
    resumed run (``--ckpt_path last``) continues the file, dropping rows of the epochs it trains again.

    Args:
        grad_every_n_steps: sample the gradient norms every this many optimizer steps.
        probe_size: how many validation examples the fixed batch holds (the first ones of the first
            validation batch the run sees).
        histograms: log histograms to TensorBoard and W&B loggers.
    """

    def __init__(self, grad_every_n_steps: int = 10, probe_size: int = 64, histograms: bool = True) -> None:
        if grad_every_n_steps < 1:
            raise ValueError(f"grad_every_n_steps must be >= 1, got {grad_every_n_steps}")
        if probe_size < 1:
            raise ValueError(f"probe_size must be >= 1, got {probe_size}")
        self.grad_every_n_steps, self.probe_size, self.histograms = grad_every_n_steps, probe_size, histograms
        self.file: Path | None = None
        self.layers: dict[str, nn.Module] = {}
        self.activations: dict[str, nn.Module] = {}
        self.params: list[tuple[int, nn.Parameter]] = []
        self.probe: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.steps_seen = 0

    # ----- setup -------------------------------------------------------------------------------

    def on_train_start(self, trainer, pl_module) -> None:
        # Every rank must ask: under DDP, Trainer.log_dir is a broadcast (a collective call).
        folder = Path(trainer.log_dir or trainer.default_root_dir)
        if not trainer.is_global_zero:
            return
        self.layers = {name: module for name, module in pl_module.named_modules()
                       if name and next(module.parameters(recurse=False), None) is not None}
        self.activations = {name: module for name, module in pl_module.named_modules()
                            if isinstance(module, RELU_FAMILY + SATURATING)}
        self.params = [(index, p) for index, module in enumerate(self.layers.values())
                       for p in module.parameters(recurse=False)]
        self.reset_gradients(pl_module.device)
        self.steps_seen = 0
        self.file = folder / DYNAMICS_FILE
        self.keep_epochs_before(trainer.current_epoch)

    def keep_epochs_before(self, epoch: int) -> None:
        """Drop the file's rows of ``epoch`` and later: a resumed run writes them again."""
        if not self.file.is_file():
            return
        with self.file.open(newline="") as f:
            rows = [row for row in csv.DictReader(f) if int(row["epoch"]) < epoch]
        with self.file.open("w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def reset_gradients(self, device: torch.device) -> None:
        self.grad_sums = torch.zeros(len(self.layers), device=device)
        self.grad_counts = [0] * len(self.layers)

    # ----- what it watches ---------------------------------------------------------------------

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.probe is not None or dataloader_idx != 0 or not trainer.is_global_zero:
            return
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        labels = batch[1] if isinstance(batch, (tuple, list)) and len(batch) > 1 else None
        if isinstance(x, torch.Tensor):
            self.probe = (x[: self.probe_size].detach().clone(),
                          labels[: self.probe_size].detach().clone() if isinstance(labels, torch.Tensor) else None)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # Gradients are complete here: all-reduced under DDP, unscaled under mixed precision.
        if not trainer.is_global_zero or not self.layers:
            return
        self.steps_seen += 1
        if (self.steps_seen - 1) % self.grad_every_n_steps:
            return
        present = [(index, p.grad) for index, p in self.params if p.grad is not None]  # a GAN steps one net at a time
        if not present:
            return
        indices = torch.tensor([index for index, _ in present], device=self.grad_sums.device)
        squares = torch.stack([torch.linalg.vector_norm(g.float()) for _, g in present]).square()
        per_layer = torch.zeros_like(self.grad_sums).index_add_(0, indices, squares)
        self.grad_sums += per_layer.sqrt()
        for index in {index for index, _ in present}:
            self.grad_counts[index] += 1

    # ----- what it records ---------------------------------------------------------------------

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or self.file is None:
            return
        epoch, step = trainer.current_epoch, trainer.global_step
        rows, histograms = [], {}
        drawn = self.histograms and any(drawing_loggers(trainer))  # no histogram values for a logger without them
        grad_means = (self.grad_sums.cpu() / torch.tensor(self.grad_counts).clamp(min=1)).tolist()
        for (name, module), grad_mean, count in zip(self.layers.items(), grad_means, self.grad_counts):
            weights = [p.detach() for p in _weights(module)]
            rows.append((epoch, step, name, "weight_norm", torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(w.float()) for w in weights])).item()))
            if count:
                rows.append((epoch, step, name, "grad_norm", grad_mean))
            if drawn:
                histograms[f"weights/{name}"] = torch.cat([w.float().flatten().cpu() for w in weights])
        self.reset_gradients(pl_module.device)
        for name, (dead, values) in self.probe_activations(pl_module, keep_values=drawn).items():
            rows.append((epoch, step, name, "dead_share", dead))
            if drawn:
                histograms[f"activations/{name}"] = values
        new = not self.file.is_file()
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with self.file.open("a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(COLUMNS)
            writer.writerows(rows)
        if histograms:
            log_histograms(trainer, histograms)

    @torch.no_grad()
    def probe_activations(self, pl_module, keep_values: bool = True) -> dict[str, tuple[float, torch.Tensor | None]]:
        """Each activation layer's dead share and (a spread of) its output values on the fixed batch
        (None without ``keep_values``)."""
        if self.probe is None or not self.activations:
            return {}
        x, labels = self.probe
        if isinstance(pl_module, ZooModule) and pl_module.takes == "noise":  # a generator: fixed noise instead
            x = torch.randn(len(x), *pl_module.input_shape, generator=torch.Generator().manual_seed(0))
        x = x.to(pl_module.device)
        conditional = isinstance(pl_module, ZooModule) and pl_module.condition_classes is not None
        kwargs = {"labels": None if labels is None else labels.to(pl_module.device)} if conditional else {}
        seen: dict[str, tuple[float, torch.Tensor]] = {}

        def record(name: str, module: nn.Module, output) -> None:
            if name in seen or not isinstance(output, torch.Tensor) or output.ndim < 2:
                return  # a layer called twice in one forward is measured on its first call
            values = None
            if keep_values:
                values = output.detach().float().flatten()
                values = values[::max(1, len(values) // HISTOGRAM_VALUES)].cpu()
            seen[name] = (dead_units(module, output.detach()).float().mean().item(), values)

        hooks = [module.register_forward_hook(lambda m, i, o, name=name: record(name, m, o))
                 for name, module in self.activations.items()]
        was_training = pl_module.training
        pl_module.eval()
        try:
            pl_module(x, **kwargs)
        finally:
            for hook in hooks:
                hook.remove()
            pl_module.train(was_training)
        return seen
