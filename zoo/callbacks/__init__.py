"""The callbacks every recipe shares: ``default_callbacks(...)`` around one monitored key, the NaN guard
and the image callbacks.

    zoo.callbacks.default_callbacks      early stopping, best and last checkpoints, NaN guard, LR, progress
    zoo.callbacks.LayerSummary           the network's layers with their in/out shapes and FLOPs
    zoo.callbacks.StopOnNonFiniteLoss    (nonfinite.py) stop at the first NaN/Inf training loss
    zoo.callbacks.TrainingDynamics       (dynamics.py) weight and gradient norms, dead units: dynamics.csv;
                                         histograms for TensorBoard and W&B
    zoo.callbacks.EmbeddingProjector     (projector.py) the model's features of validation images, at fit end
    zoo.callbacks.RunPage                (run_page.py) report.html in the run folder: curves, pictures, config
    zoo.callbacks.FrozenFeatures         (frozen.py) frozen backbone stages computed once per training image
    zoo.callbacks.ReconstructionImages   (images.py) inputs next to reconstructions; also SampleImages,
                                         LatentInterpolation, LatentScatter
    zoo.checkpointing.LastCheckpoint     last.ckpt after every epoch (and every N steps)
    zoo.finetune.GradualUnfreezing       one more backbone stage every N epochs
"""

from __future__ import annotations

import time

import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    RichProgressBar,
)
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.model_summary import get_human_readable_count, summarize
from torch.utils.flop_counter import FlopCounterMode
from torchmetrics import Metric, MetricCollection

from zoo.callbacks.dynamics import TrainingDynamics
from zoo.callbacks.frozen import FrozenFeatures
from zoo.callbacks.images import ImageLogger, LatentInterpolation, LatentScatter, ReconstructionImages, SampleImages
from zoo.callbacks.nonfinite import NonFiniteLossError, StopOnNonFiniteLoss
from zoo.callbacks.projector import EmbeddingProjector
from zoo.callbacks.run_page import RunPage
from zoo.checkpointing import LastCheckpoint

__all__ = [
    "EmbeddingProjector", "FrozenFeatures", "ImageLogger", "LatentInterpolation", "LatentScatter", "LayerSummary", "NonFiniteLossError",
    "ProgressBar", "ReconstructionImages", "RunPage", "SampleImages", "StopOnNonFiniteLoss", "TrainingDynamics",
    "default_callbacks",
]


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar, redrawn at most ``redraws_per_second`` times a second in training.

    Lightning redraws it, and reads the logged values it shows, after every training batch: on small
    models that is a few percent of the training time (``python -m benchmarks.time_to_accuracy``),
    for a change no one can read at hundreds of batches a second. The last batch of an epoch is
    always drawn.
    """

    def __init__(self, redraws_per_second: float = 20.0) -> None:
        super().__init__()
        self.redraw_interval = 1.0 / redraws_per_second
        self.drawn_at = float("-inf")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if now - self.drawn_at < self.redraw_interval and batch_idx + 1 < self.total_train_batches:
            return
        self.drawn_at = now
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer, pl_module) -> dict:
        """The logged values the bar shows, without the logger's version number (the run folder names it)."""
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class LayerSummary(ModelSummary):
    """The summary printed when fit starts: the network's layers with their input and output shapes and
    FLOPs (measured with torch's flop counter on one example input), and the parameter totals.

    The metric objects a model keeps are left out: they have no parameters and are not layers.

    Args:
        max_depth: how deep into nested modules the table goes (1: the model's children).
    """

    def __init__(self, max_depth: int = 3) -> None:
        super().__init__(max_depth=max_depth)
        self.depth = max_depth

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            rank_zero_info("\n" + self.table(pl_module))

    def table(self, pl_module) -> str:
        """The layers (without the metrics) as an aligned text table, then the parameter and FLOP totals."""
        summary = summarize(pl_module, max_depth=self.depth)  # names, types and parameters of the layers
        metric_names = [name for name, module in pl_module.named_modules()
                        if isinstance(module, (Metric, MetricCollection))]
        names = [name for name in summary.layer_names
                 if not any(name == m or name.startswith(m + ".") for m in metric_names)]
        shapes, flops, total_flops = measure_layers(pl_module, names, self.depth)
        rows = [("Name", "Type", "Params", "FLOPs", "In sizes", "Out sizes")]
        for name, kind, params in zip(summary.layer_names, summary.layer_types, summary.param_nums):
            if name in names:
                size_in, size_out = shapes.get(name, ("-", "-"))
                rows.append((name, kind, get_human_readable_count(params),
                             get_human_readable_count(flops[name]) if name in flops else "-", size_in, size_out))
        widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "-" * max(len(line) for line in lines))
        frozen = summary.total_parameters - summary.trainable_parameters
        lines += ["", f"{get_human_readable_count(summary.trainable_parameters).strip()} trainable params, "
                      f"{get_human_readable_count(frozen).strip()} frozen, {summary.model_size:.3f} MB"]
        if total_flops:
            lines.append(f"{get_human_readable_count(total_flops)} FLOPs per forward pass of one example")
        return "\n".join(lines)


def _shape(value) -> str:
    if isinstance(value, torch.Tensor):
        return str(list(value.shape))
    if isinstance(value, (tuple, list)):
        return str([_shape(v) for v in value]).replace("'", "")
    return "-"


def measure_layers(pl_module, names: list[str], depth: int) -> tuple[dict[str, tuple[str, str]], dict[str, int], int]:
    """Input and output shapes and FLOPs of the named layers, from one forward pass of a zero example.

    The example is one sample of the model's ``input_shape`` (a free size such as a sequence's length
    set to 28); a model whose forward needs more than that tensor gets no shapes or FLOPs.

    Args:
        pl_module: the LightningModule.
        names: the layers to measure, as ``named_modules`` names them.
        depth: how deep the flop counter attributes FLOPs to nested modules.

    Returns:
        ``{name: (in sizes, out sizes)}``, ``{name: FLOPs}`` and the FLOPs of the whole forward pass.
    """
    shape = tuple(28 if d is None else d for d in getattr(pl_module, "input_shape", ()) or ())
    if not shape:
        return {}, {}, 0
    modules = dict(pl_module.named_modules())
    shapes: dict[str, tuple[str, str]] = {}

    def record(name: str, inputs, output) -> None:  # a hook that returned a value would replace the output
        shapes.setdefault(name, (_shape(inputs[0] if len(inputs) == 1 else list(inputs)), _shape(output)))

    hooks = [modules[name].register_forward_hook(lambda module, inputs, output, name=name: record(name, inputs, output))
             for name in names if name in modules]
    counter = FlopCounterMode(display=False, depth=depth + 1)
    modes = {module: module.training for module in pl_module.modules()}  # frozen batch norms stay in eval mode
    pl_module.eval()
    try:
        # eager even if the model is compiled: one example must not cost a compilation for its batch size
        with torch.no_grad(), torch.compiler.set_stance("force_eager"), counter:
            pl_module(torch.zeros(1, *shape, device=pl_module.device))
    except (RuntimeError, TypeError, ValueError):  # a forward that needs more than a tensor (e.g. labels)
        return {}, {}, 0
    finally:
        for hook in hooks:
            hook.remove()
        for module, training in modes.items():
            module.training = training
    counts = counter.get_flop_counts()
    root = type(pl_module).__name__
    flops = {name: sum(counts.get(f"{root}.{name}", {}).values()) for name in names}
    return shapes, flops, counter.get_total_flops()


def default_callbacks(
    monitor: str = "val/loss",
    mode: str = "min",
    patience: int | None = 10,
    dirpath: str | None = None,
    lr_monitor: bool = True,
    progress_bar: bool = True,
    last_every_n_steps: int | None = None,
    summary: bool = True,
    dynamics: bool = True,
    run_page: bool = True,
    cache_features: bool = True,
) -> list[Callback]:
    """Early stopping and checkpointing on the same key, a NaN guard, LR logging, a progress bar, and
    what training did to the layers, and the run page.

    Args:
        monitor: the logged metric both EarlyStopping and ModelCheckpoint follow (a model's
            ``monitor`` attribute, e.g. ``val/acc``).
        mode: ``max`` if larger is better, else ``min`` (a model's ``monitor_mode``).
        patience: validation rounds without improvement before stopping; None disables early stopping.
        dirpath: checkpoint folder; None puts it in the logger's run folder.
        lr_monitor: log the learning rate (needs a logger).
        progress_bar: show Lightning's rich progress bar (:class:`ProgressBar`).
        last_every_n_steps: also refresh ``last.ckpt`` every this many training steps, so that a
            crash mid-epoch loses at most that many steps (None: at the end of each epoch only).
        summary: print the network's layers when fit starts (:class:`LayerSummary`, in place of
            Lightning's summary).
        dynamics: record weight and gradient norms and dead units per layer in ``dynamics.csv``
            (:class:`TrainingDynamics`), with histograms and the embedding projector
            (:class:`EmbeddingProjector`) for a TensorBoard or W&B logger.
        run_page: write the run page, ``report.html`` in the run folder (:class:`RunPage`; needs a logger).
        cache_features: compute the output of backbone stages frozen for the whole fit once per training
            image, and train the rest from it (:class:`FrozenFeatures`; with ``finetune`` set to
            ``feature_extractor`` or ``top<k>`` and no augmentation).

    Checkpointing keeps the best checkpoint (``best-...ckpt``) and the latest one (``last.ckpt``,
    written after every training epoch, for ``zoo fit --ckpt_path last``; from Python pass its
    path, ``<run folder>/checkpoints/last.ckpt``, as ``ckpt_path``).
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    best = ModelCheckpoint(
        dirpath=dirpath,
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        # "/" in metric names would create sub-folders; auto_insert_metric_name=False avoids that.
        filename="best-epoch{epoch:03d}-" + monitor.replace("/", "_") + "{" + monitor + ":.4f}",
        auto_insert_metric_name=False,
    )
    callbacks: list[Callback] = [
        best,  # first, so that it is `trainer.checkpoint_callback` and `ckpt_path="best"` finds it
        # last.ckpt on its own schedule (every epoch end, optionally every N steps): a monitored
        # checkpoint cannot save mid-epoch, before the monitored value exists.
        LastCheckpoint(dirpath=dirpath, every_n_train_steps=last_every_n_steps),
    ]
    callbacks.append(StopOnNonFiniteLoss())
    if summary:
        callbacks.append(LayerSummary())
    if patience is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    if lr_monitor:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    if progress_bar:
        callbacks.append(ProgressBar())
    if dynamics:
        callbacks += [TrainingDynamics(), EmbeddingProjector()]
    if run_page:
        callbacks.append(RunPage(checkpoint=best))  # its best, whatever checkpoints a user adds
    if cache_features:
        callbacks.append(FrozenFeatures())
    return callbacks
