"""How an evaluation report is drawn and written: its pictures and its HTML page.

:mod:`zoo.report` measures; this module draws what it measured (matplotlib and PIL, files only)
and writes the page. A measurement hands over each picture as a :class:`Picture`: a file name, a
caption and what draws it.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple


class Picture(NamedTuple):
    """One picture of a report: ``draw(path)`` writes it as ``file``, shown with ``caption``."""

    file: str
    caption: str
    draw: Callable[[Path], None]


def draw(pictures: list[Picture], directory: Path) -> dict[str, str]:
    """Write every picture into ``directory``; returns file -> caption, as ``metrics.json`` lists them."""
    for picture in pictures:
        picture.draw(directory / picture.file)
    return {picture.file: picture.caption for picture in pictures}


def grid_picture(grid, path: Path, factor: int = 2) -> None:
    """An image grid (C, H, W) in [0, 1] as a PNG; a grid of 28-pixel images is small on a screen, so
    each pixel becomes ``factor`` x ``factor``."""
    from zoo.infer import save_png

    save_png(grid.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2), path)


def new_figure(width: float, height: float):
    """A figure drawn into files only: no pyplot, so no window and no change to the process's
    matplotlib backend (a notebook that trains with the run page keeps its own)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _save(figure, path: Path) -> None:
    figure.savefig(path, bbox_inches="tight")


def confusion_picture(matrix, names: list[str], path: Path) -> None:
    """The confusion matrix ``[true][predicted]`` as a labelled heat map."""
    from torchmetrics.classification import MulticlassConfusionMatrix

    side = max(5.0, 0.6 * len(names) + 2)
    figure = new_figure(side, side)
    # Margins from the longest class name (about 0.09 inch a character at the tick labels' size), so
    # that the figure is drawn once: bbox_inches="tight" draws it a second time to find its edges.
    longest = max(map(len, names))
    rotated = longest > 3
    left, bottom = 0.6 + 0.09 * longest, 0.6 + (0.065 * longest if rotated else 0.2)
    figure.subplots_adjust(left=left / side, bottom=bottom / side, right=1 - 0.2 / side, top=1 - 0.2 / side)
    axes = figure.add_subplot()
    MulticlassConfusionMatrix(num_classes=len(names)).plot(val=matrix, ax=axes, labels=names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.tick_params(axis="x", labelrotation=45 if rotated else 0)
    figure.savefig(path)


def misclassified_picture(images, errors: list[dict[str, Any]], path: Path) -> None:
    """Each image with its true class, what was read and its probability."""
    columns = 6
    rows = -(-len(errors) // columns)
    figure = new_figure(1.7 * columns, 2.0 * rows)
    for i, (image, error) in enumerate(zip(images, errors)):
        axes = figure.add_subplot(rows, columns, i + 1)
        picture = image.clamp(0, 1)
        axes.imshow(picture[0] if picture.shape[0] == 1 else picture.permute(1, 2, 0), cmap="gray", vmin=0, vmax=1)
        axes.set_title(f"true {error['true']}\nread {error['predicted']} {error['probability']:.2f}", fontsize=8)
        axes.axis("off")
    _save(figure, path)



STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 980px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; } img { max-width: 100%; border: 1px solid #eee; }
code { background: #f3f3f3; padding: 0 0.25em; border-radius: 3px; }
"""


def page(report: dict[str, Any], directory: Path) -> str:
    """The report as one self-contained HTML page, its pictures (files in ``directory``) embedded."""
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(report['weights'])} · report</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>{e(report['weights'])}</h1><p><code>{e(report['class_path'])}</code>, evaluated on the test split"
             + (f" ({report['test_images']:,} {report.get('test_unit', 'images')})" if "test_images" in report else "")
             + ".</p>",
             "<h2>Metrics</h2>", html_table(["metric", "value"], [[k, _number(v)] for k, v in sorted(report["metrics"].items())])]
    if "top_k_accuracy" in report:
        parts.append(html_table(["top-k", "accuracy"], [[f"top-{k}", f"{100 * v:.2f} %"] for k, v in report["top_k_accuracy"].items()]))
    if "per_class" in report:
        parts += ["<h2>Per class</h2>", html_table(
            ["class", "precision", "recall", "F1", f"test {report.get('test_unit', 'images')}"],
            [[r["class"], f"{100 * r['precision']:.2f} %", f"{100 * r['recall']:.2f} %", f"{100 * r['f1']:.2f} %",
              f"{r['support']:,}"] for r in report["per_class"]])]
    if report["pictures"]:
        parts.append("<h2>Pictures</h2>")
    for file, caption in report["pictures"].items():
        data = base64.b64encode((directory / file).read_bytes()).decode()
        parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{e(caption)}'>"
                     f"<figcaption>{e(caption)}</figcaption></figure>")
    provenance = [[key, json.dumps(value) if isinstance(value, (dict, list)) else str(value)]
                  for key, value in report["provenance"].items() if value is not None]
    parts += ["<h2>Provenance</h2>", html_table(["", ""], provenance, header=False, numeric=False), "</body></html>\n"]
    return "\n".join(parts)


def html_table(columns: list[str], rows: list[list[str]], header: bool = True, numeric: bool = True) -> str:
    """An HTML table; with ``numeric`` every column after the first is right-aligned."""
    e = html.escape
    head = "<tr>" + "".join(f"<th>{e(c)}</th>" for c in columns) + "</tr>" if header else ""
    cell = "<td class='n'>" if numeric else "<td>"
    body = "".join("<tr><td>" + e(row[0]) + "</td>" + "".join(f"{cell}{e(v)}</td>" for v in row[1:]) + "</tr>"
                   for row in rows)
    return f"<table>{head}{body}</table>"


def _number(value: float) -> str:
    return f"{value:.6g}"
