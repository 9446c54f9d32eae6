"""The run page (``report.html`` in a run folder) and the comparison page of several runs, drawn.

:mod:`zoo.runs` reads what a run folder holds; this module draws it with matplotlib (the helpers of
:mod:`zoo.report_page`) and writes one self-contained HTML page: every picture inlined as a PNG data
URI, no script, nothing fetched.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

from zoo.report_page import STYLE, confusion_picture, html_table, new_figure
from zoo.runs import DYNAMICS, DYNAMICS_QUANTITIES, Run

BEST_COLOUR, STOP_COLOUR = "#2a9d3a", "#c0392b"
STAGE_STYLES = {"train": "-", "val": "--"}
QUANTITY_TITLES = {"weight_norm": "weight norm", "grad_norm": "gradient norm", "dead_share": "share of dead units"}
PAGE_STYLE = STYLE + """
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; border-radius: 4px; }
p.note { color: #666; } .marks span { margin-right: 1.5em; }
"""


def _png(figure) -> str:
    """The figure as a PNG data URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")  # laid out with fixed margins (_grid): drawn once
    return _data_uri(buffer.getvalue())


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _img(uri: str, caption: str) -> str:
    e = html.escape
    return f"<figure><img src='{uri}' alt='{e(caption)}'><figcaption>{e(caption)}</figcaption></figure>"


def metric_groups(keys) -> dict[str, list[str]]:
    """The logged keys by what they measure: ``loss`` -> ``[train/loss, val/loss]``; the learning rate apart."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys):
        if "/" in key:
            groups.setdefault(key.split("/", 1)[1], []).append(key)
    return dict(sorted(groups.items(), key=lambda item: (item[0] != "loss", item[0])))


# A panel's margins in inches: room for the tick labels and the axis label on the left and below, the
# title above. Fixed margins draw the figure once; matplotlib's tight layout draws it twice to measure.
LEFT, RIGHT, BOTTOM, TOP = 0.75, 0.2, 0.5, 0.35


def _grid(count: int, width: float = 4.6, height: float = 3.0, columns: int = 2):
    """A figure of ``count`` panels of ``width`` x ``height`` inches each (margins included), ``columns`` a row."""
    columns = min(columns, count)
    rows = max(1, -(-count // columns))
    figure = new_figure(width * columns, height * rows)
    inner_width, inner_height = width - LEFT - RIGHT, height - TOP - BOTTOM
    figure.subplots_adjust(left=LEFT / (width * columns), right=1 - RIGHT / (width * columns),
                           bottom=BOTTOM / (height * rows), top=1 - TOP / (height * rows),
                           wspace=(LEFT + RIGHT) / inner_width, hspace=(TOP + BOTTOM) / inner_height)
    return figure, [figure.add_subplot(rows, columns, i + 1) for i in range(count)]


def _mark_epochs(axes, best: int | None, stopped: int | None) -> None:
    if best is not None:
        axes.axvline(best, color=BEST_COLOUR, linestyle=":", linewidth=1.5, label=f"best checkpoint (epoch {best})")
    if stopped is not None:
        axes.axvline(stopped, color=STOP_COLOUR, linestyle="-.", linewidth=1.2, label=f"early stop (epoch {stopped})")


def _epochs_axis(axes) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    low, high = axes.get_xlim()
    if high - low < 2:  # one epoch: matplotlib would spread fractions of an epoch around it
        axes.set_xlim(round((low + high) / 2) - 1, round((low + high) / 2) + 1)
    axes.set_xlabel("epoch")
    axes.grid(alpha=0.3)


def curves_figure(run: Run) -> str | None:
    """One panel per measure (loss, accuracy, ...), training and validation on it, the best and stop epochs marked."""
    groups = metric_groups(run.curves)
    if not groups:
        return None
    figure, panels = _grid(len(groups))
    best, stopped = run.best_epoch, run.record.get("stopped_epoch")
    for axes, (measure, keys) in zip(panels, groups.items()):
        for key in keys:
            epochs = sorted(run.curves[key])
            stage = key.split("/", 1)[0]
            axes.plot(epochs, [run.curves[key][e] for e in epochs], STAGE_STYLES.get(stage, "-."), marker="o",
                      markersize=3, label=stage)
        _mark_epochs(axes, best, stopped)
        axes.set_title(measure)
        _epochs_axis(axes)
        axes.legend(fontsize=8)
    return _png(figure)


def schedule_figure(run: Run) -> str | None:
    """The learning rate and the time per epoch, side by side (each where the run recorded it)."""
    rates = {k: v for k, v in run.curves.items() if k.startswith("lr")}
    seconds = run.record.get("epoch_seconds") or {}
    count = bool(rates) + bool(seconds)
    if not count:
        return None
    figure, panels = _grid(count, height=2.6)
    panels = iter(panels)
    if rates:
        axes = next(panels)
        for key, values in sorted(rates.items()):
            epochs = sorted(values)
            axes.plot(epochs, [values[e] for e in epochs], marker="o", markersize=3, label=key)
        axes.set_title("learning rate")
        axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        _epochs_axis(axes)
        if len(rates) > 1:
            axes.legend(fontsize=8)
    if seconds:
        axes = next(panels)
        axes.bar([int(e) for e in seconds], list(seconds.values()), color="#7a9cc6")
        axes.set_title("seconds per epoch (training and validation)")
        _epochs_axis(axes)
    return _png(figure)


def dynamics_figure(run: Run) -> str | None:
    """Each layer's weight and gradient norms and each activation's share of dead units, by epoch."""
    from matplotlib.ticker import LogFormatter

    quantities = [q for q in DYNAMICS_QUANTITIES if run.dynamics and run.dynamics.get(q)]
    if not quantities:
        return None
    figure, panels = _grid(len(quantities), width=5.0, height=3.2)
    for axes, quantity in zip(panels, quantities):
        for layer, values in run.dynamics[quantity].items():
            epochs = sorted(values)
            axes.plot(epochs, [values[e] for e in epochs], marker="o", markersize=3, label=layer)
        axes.set_title(QUANTITY_TITLES[quantity])
        if quantity == "dead_share":
            axes.set_ylim(-0.02, 1.02)
        elif all(v > 0 for values in run.dynamics[quantity].values() for v in values.values()):
            axes.set_yscale("log")
            # Plain numbers (0.3, 2, 60) read faster than 3x10^-1 and need no mathtext to draw; minor ticks
            # are labelled as matplotlib's own log formatter decides (none where the axis spans decades).
            axes.yaxis.set_major_formatter(LogFormatter())
            axes.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
        _epochs_axis(axes)
        axes.legend(fontsize=7, ncol=1 + len(run.dynamics[quantity]) // 8)
    return _png(figure)


def confusion_figure(run: Run) -> str | None:
    confusion = run.record.get("confusion")
    if not confusion:
        return None
    import torch

    buffer = io.BytesIO()
    confusion_picture(torch.tensor(confusion["matrix"]), confusion["class_names"], buffer)
    return _data_uri(buffer.getvalue())


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def summary_rows(run: Run) -> list[list[str]]:
    """The monitored key, its best epoch and value, the end of the run, and the values at the best epoch."""
    best = run.best_epoch
    record = run.record
    rows = []
    if run.monitor:
        rows.append(["monitored", f"{run.monitor} ({'lower' if run.mode == 'min' else 'higher'} is better)"])
    if best is not None:
        rows.append(["best checkpoint", f"epoch {best}"])
    epochs = run.epochs
    if epochs:
        end = f"{len(epochs)} epoch{'s' if len(epochs) != 1 else ''} (0 to {epochs[-1]})"
        if record.get("stopped_epoch") is not None:
            end += f", stopped early at epoch {record['stopped_epoch']}: {run.monitor} had not improved"
        status = record.get("status")
        if status == "interrupted":
            end += "; interrupted before its end"
        elif status == "running":
            end += "; still running when this page was written"
        rows.append(["trained", end])
    seconds = list((record.get("epoch_seconds") or {}).values())
    if seconds:
        rows.append(["time", f"{sum(seconds):.1f} s in all, {sum(seconds) / len(seconds):.2f} s per epoch"])
    for key in sorted(run.curves):
        if best is not None and best in run.curves[key] and not key.startswith("lr"):
            rows.append([f"{key} at epoch {best}", _number(run.curves[key][best])])
    for key, value in sorted(run.test.items()):
        rows.append([f"{key} (test after fit)", _number(value)])
    return rows


def run_page(run: Run) -> str:
    """The run page: summary, curves, learning rate and time, layer dynamics, pictures, confusion matrix, config."""
    e = html.escape
    title = run.name
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)} · run</title>",
             f"<style>{PAGE_STYLE}</style></head><body>",
             f"<h1>{e(title)}</h1><p>What this training run did, epoch by epoch: <code>zoo report {e(str(run.folder))}</code> "
             "writes this page again from the run's files.</p>",
             html_table(["", ""], summary_rows(run), header=False, numeric=False)]
    parts.append("<h2>Loss and metrics by epoch</h2>")
    curves = curves_figure(run)
    parts.append(_img(curves, "solid: training, dashed: validation; dotted green: the best checkpoint's epoch"
                              + ("; dash-dot red: where early stopping ended the run" if run.record.get("stopped_epoch") is not None else ""))
                 if curves else "<p class='note'>No metric was logged by epoch (metrics.csv holds none).</p>")
    schedule = schedule_figure(run)
    if schedule:
        parts += ["<h2>Learning rate and time per epoch</h2>", _img(schedule, "the learning rate each epoch started with; "
                                                                              "the wall-clock seconds of each epoch")]
    parts.append("<h2>Layer dynamics</h2>")
    dynamics = dynamics_figure(run)
    if dynamics:
        parts.append(_img(dynamics, "each layer's weight norm and gradient norm, and each activation layer's share of "
                                    "dead units (never active on a batch), by epoch"))
    elif run.dynamics is None:
        parts.append(f"<p class='note'>This run did not record layer dynamics: it has no {DYNAMICS} "
                     "(runs made before the zoo recorded them, or with the dynamics callback off).</p>")
    else:
        parts.append(f"<p class='note'>{DYNAMICS} holds no weight norm, gradient norm or dead share.</p>")
    if run.pictures:
        parts.append("<h2>Pictures (latest epoch)</h2>")
        for tag, path in run.pictures.items():
            parts.append(_img(_data_uri(path.read_bytes()), f"{tag}, epoch {int(path.stem.rsplit('_epoch', 1)[1])}"))
    confusion = confusion_figure(run)
    if confusion:
        record = run.record["confusion"]
        parts += ["<h2>Confusion matrix</h2>", _img(confusion, f"the best checkpoint (epoch {record.get('epoch')}) on the "
                                                               f"{record.get('images', 0):,} validation images: rows are the "
                                                               "true classes, columns the predicted ones")]
    parts += ["<h2>Config</h2>", f"<pre>{e(run.config_text)}</pre>" if run.config_text else
              "<p class='note'>This run has no config.yaml (the <code>zoo</code> command writes it).</p>", "</body></html>\n"]
    return "\n".join(parts)


def write_run_page(run: Run, path: Path | None = None) -> Path:
    """Write ``run``'s page (default: ``report.html`` in its folder) through a temporary file, so that a
    browser never reads half a page; returns its path."""
    from zoo.runs import PAGE

    path = path or run.folder / PAGE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(run_page(run))
    partial.replace(path)
    return path


# ----- several runs --------------------------------------------------------------------------------

def run_labels(runs: list[Run]) -> list[str]:
    """Short unique names of the runs: ``recipe/version_N``, or the whole path where those repeat."""
    names = [run.name for run in runs]
    return names if len(set(names)) == len(names) else [str(run.folder) for run in runs]


def compare_figure(runs: list[Run], keys: list[str]) -> str:
    """One panel per key, one colour per run."""
    figure, panels = _grid(len(keys))
    labels = run_labels(runs)
    for axes, key in zip(panels, keys):
        for index, (run, label) in enumerate(zip(runs, labels)):
            epochs = sorted(run.curves[key])
            axes.plot(epochs, [run.curves[key][e] for e in epochs], color=f"C{index}", marker="o", markersize=3, label=label)
        axes.set_title(key)
        _epochs_axis(axes)
        axes.legend(fontsize=8)
    return _png(figure)


def compare_page(runs: list[Run], keys: list[str], settings: dict[str, list[str]]) -> str:
    """The comparison page: the runs' curves of ``keys`` overlaid, the settings that differ and the best values."""
    labels = run_labels(runs)
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>compared runs</title>",
             f"<style>{PAGE_STYLE}</style></head><body>", f"<h1>{len(runs)} runs compared</h1>",
             "<h2>Settings that differ</h2>"]
    if settings:
        parts.append(html_table(["setting", *labels], [[key, *values] for key, values in settings.items()], numeric=False))
    else:
        parts.append("<p class='note'>Their config.yaml files hold the same settings.</p>")
    rows = []
    for run, label in zip(runs, labels):
        best = run.best_epoch
        values = [_number(run.curves[k][best]) if best in run.curves.get(k, {}) else "-" for k in keys if k.startswith("val/")]
        rows.append([label, run.monitor or "-", "-" if best is None else str(best), *values])
    parts += ["<h2>Best validation metrics</h2>",
              html_table(["run", "monitored", "best epoch", *(k for k in keys if k.startswith("val/"))], rows),
              "<p class='note'>each run's values at the epoch of its best checkpoint</p>",
              "<h2>Curves</h2>", _img(compare_figure(runs, keys), "one colour per run; the metrics every run logged"),
              "</body></html>\n"]
    return "\n".join(parts)
