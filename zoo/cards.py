"""Model cards: what a weight is, its data, its measured numbers, how to reproduce it, what not to use it for.

A card is written from what the zoo recorded about the weights, never by hand: the manifest entry
(or a ``save_pretrained`` folder's ``config.json``) and, where there is one, the weight's evaluation
report (:mod:`zoo.report`). ``save_pretrained`` writes one as ``README.md`` beside
``model.safetensors`` and ``config.json`` (the layout the Hugging Face Hub reads). The cards of the
shipped weights are ``weights/cards/<name>.md`` in the repository, written by
``python -m zoo.cards weights`` from the manifest and the reports in ``weights/reports/<name>/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DATASETS = {  # what a card says about each dataset the zoo trains on, and its license
    "mnist": {
        "title": "MNIST", "train_size": 60000,
        "about": "handwritten digits 0-9, 28×28 grayscale (LeCun, Cortes & Burges 1998): 60,000 training and 10,000 "
                 "test images",
        "license": "CC BY-SA 3.0 (Yann LeCun and Corinna Cortes hold the copyright of this derivative of NIST's "
                   "data, as the Keras dataset documentation states)",
    },
    "fashion_mnist": {
        "title": "Fashion-MNIST", "train_size": 60000,
        "about": "Zalando's article images in ten classes, 28×28 grayscale (Xiao, Rasul & Vollgraf 2017): 60,000 "
                 "training and 10,000 test images",
        "license": "MIT (Zalando Research)",
    },
}
TABLES = {  # scikit-learn's bundled tables a shipped weight trains on (TabularDataModule(table=...))
    "wine": {
        "title": "the wine table", "rows": 178,
        "about": "178 wines from three cultivars, 13 chemical measurements each (Forina et al.; scikit-learn's "
                 "load_wine)",
        "license": "CC BY 4.0 (UCI Machine Learning Repository), as scikit-learn bundles it",
    },
    "breast_cancer": {
        "title": "the breast cancer table", "rows": 569,
        "about": "569 breast tumours, 30 measurements of their cell nuclei from a biopsy image, malignant or benign "
                 "(Wisconsin Diagnostic Breast Cancer, Street, Wolberg & Mangasarian 1993; scikit-learn's "
                 "load_breast_cancer)",
        "license": "CC BY 4.0 (UCI Machine Learning Repository), as scikit-learn bundles it",
    },
    "diabetes": {
        "title": "the diabetes table", "rows": 442,
        "about": "442 patients, 10 baseline measurements (age, sex, BMI, blood pressure, six blood serum values) and "
                 "the progression of their disease one year later (Efron, Hastie, Johnstone & Tibshirani 2004; "
                 "scikit-learn's load_diabetes)",
        "license": "as scikit-learn bundles it (BSD 3-Clause); the authors of the 2004 paper published the data",
    },
}
TABLE_METRICS = {  # a table's regression metrics are on its standardised target
    "mse": "mean squared error of the target standardised with the training rows' mean and std",
    "mae": "mean absolute error of the standardised target",
}
METRICS = {  # metric key (without the "test/" prefix) -> what it measures
    "acc": "accuracy",
    "mse": "mean squared error per pixel",
    "psnr": "peak signal-to-noise ratio of the reconstructions, dB",
    "noisy_psnr": "PSNR of the corrupted inputs, dB",
    "denoised_psnr": "PSNR of the reconstructions of corrupted inputs against the clean images, dB",
    "recon_loss": "reconstruction loss per image (the training objective's data term)",
    "sparsity_penalty": "the sparsity penalty (KL to the target activation)",
    "code_mean": "mean code activation",
    "code_hoyer": "Hoyer sparsity of the codes (0: dense, 1: one active unit)",
    "kl": "KL(q(z|x) ‖ p(z)) per image, nats",
    "recon_nll": "reconstruction negative log-likelihood per image, nats",
    "nelbo": "negative evidence lower bound per image, nats",
    "nll": "negative log-likelihood per image by importance sampling (k = 1000), nats",
    "fid_lenet": "Fréchet distance in LeNet-5 features, 10,000 samples vs the 10,000 test images (lower is better)",
    "coverage_min": "the smallest share of any digit among the samples, as lenet5_mnist classifies them (10 % is even)",
    "coverage_max": "the largest share of any digit among the samples",
    "label_acc": "the share of samples lenet5_mnist classifies as the digit they were drawn for (1,000 per digit)",
    "iwae_bound": "the importance-weighted bound the model trained on, per image, nats",
}
CARDS_DIR = "cards"
REPORTS_DIR = "reports"


def model_card(name: str, entry: dict[str, Any], report: dict[str, Any] | None = None, pictures: str | None = None) -> str:
    """The Markdown card of weights ``name``.

    Args:
        name: the weights' name (a shipped name, or the folder name of ``save_pretrained``).
        entry: the manifest entry, or the ``config.json`` of a ``save_pretrained`` folder: at least
            ``class_path``, ``hparams`` and ``sha256``; ``dataset``, ``datamodule``, ``recipe``,
            ``seed``, ``trained_with`` and ``metrics`` where known.
        report: the weights' evaluation report (``metrics.json`` of ``zoo evaluate --report``), or None.
        pictures: where the report's pictures are, relative to the card (None: the card shows none).
    """
    from zoo.registry import model_classes

    cls = model_classes().get(entry["class_path"])
    summary = (cls.__doc__ or "").strip().splitlines()[0] if cls is not None else entry["class_path"]
    kind = "table" if (entry.get("hparams") or {}).get("input_table") else _kind(entry["class_path"])
    conditional = (entry.get("hparams") or {}).get("num_classes") is not None and kind in ("gan", "vae")
    dataset = DATASETS.get(entry.get("dataset", "")) if kind != "table" else _table_dataset(entry)
    lines = ["---", "library_name: lightning-zoo", f"tags: [{', '.join(_tags(kind, entry, conditional))}]"]
    if entry.get("dataset"):
        lines.append(f"datasets: [{entry['dataset']}]")
    lines += ["---", "", f"# {name}", "", f"{summary} `{entry['class_path']}`"
              + (f", {entry['num_params']:,} parameters" if "num_params" in entry else "")
              + (f", trained on {dataset['title']}." if dataset else ".")
              + (f" Class-conditional, with {entry['hparams']['num_classes']} classes: it draws the class asked for"
                 + ("; its likelihoods are of an image given its class, -log p(x|y)." if kind == "vae" else ".")
                 if conditional else ""), ""]
    lines += _use(name, kind, entry, conditional) if kind != "table" else _use_table(name, entry)
    lines += _data(entry, dataset) if kind != "table" else _table_data(entry, dataset)
    lines += _metrics(entry, report, dataset, kind)
    if report and pictures is not None:
        lines += [f"![{caption}]({pictures}/{file})\n\n*{caption.capitalize()}.*\n" for file, caption in report["pictures"].items()]
    lines += _reproduce(entry)
    lines += _limitations(kind, dataset, conditional)
    return "\n".join(lines).rstrip() + "\n"


def _kind(class_path: str) -> str:
    """classifier, autoencoder, vae or gan: what the class says it can do (export a decoder, sample, or neither)."""
    from zoo.registry import model_classes

    cls = model_classes().get(class_path)
    decodes = cls is not None and "decoder" in cls.export_parts
    samples = cls is not None and cls.can_sample
    return {(True, True): "vae", (True, False): "autoencoder", (False, True): "gan"}.get((decodes, samples), "classifier")


def _table_dataset(entry: dict[str, Any]) -> dict[str, Any] | None:
    """What a card says about the scikit-learn table a table model trained on (None: a table of the user's)."""
    args = (entry.get("datamodule") or {}).get("init_args") or {}
    return TABLES.get(args.get("table")) if args.get("path") is None else None


def _use_table(name: str, entry: dict[str, Any]) -> list[str]:
    table = entry["hparams"]["input_table"]
    target = table["target"]
    columns = [column["name"] for column in table["columns"]]
    lines = ["## Use", "", "It reads raw rows of a table with the columns " + ", ".join(f"`{c}`" for c in columns)
             + " (more are ignored; an `id` column labels the rows), and brings them into its input with the "
             "preprocessing it carries, fitted on its training rows: numbers standardised, gaps filled with the "
             "training median and flagged, categories one-hot.", "",
             "```python", "import pandas as pd", "", "import zoo", "from zoo.data.tabular import decode_output, encode_rows",
             "", f'model = zoo.load_pretrained("{name}")  # eval mode, CPU; sha256 checked',
             'rows = pd.read_csv("rows.csv")',
             "x = encode_rows(rows, model.table_contract)  # float32 (N, "
             f"{len(table['features'])})",
             "predictions = decode_output(model(x), model.table_contract)"
             + ("  # class and probability per row" if target["task"] == "classification"
                else f"  # {', '.join(target['columns'])} per row, in the target's units"), "```", ""]
    if target["task"] == "classification":
        lines += ["Classes, in output order: " + ", ".join(f"`{n}`" for n in target["classes"]) + ".", ""]
    lines += ["From the command line, and as a file for deployment:", "", "```bash",
              f"zoo infer {name} rows.csv --output predictions.csv",
              f"zoo export {name}    # {name}.onnx, checked against the model (it takes the encoded rows)", "```", ""]
    return lines


def _table_data(entry: dict[str, Any], dataset: dict[str, Any] | None) -> list[str]:
    if dataset is None:
        return []
    args = entry.get("datamodule", {}).get("init_args", {})
    rows = dataset["rows"]
    n_test, n_val = round(args.get("test_size", 0.15) * rows), round(args.get("val_size", 0.15) * rows)
    return ["## Data", "", f"{dataset['title'].capitalize()}: {dataset['about']}.",
            f"Training used {rows - n_test - n_val:,} rows; {n_val:,} {_validation_role(entry)} and {n_test:,} were "
            f"used only for the numbers below (drawn with seed {args.get('seed', 0)}). The preprocessing was fitted on "
            "the training rows only.", "", f"License of the data: {dataset['license']}.", ""]


def _kept_last(entry: dict[str, Any]) -> bool:
    """Whether the weights are those training ended with (``zoo fit --test_checkpoint last``), not the best
    checkpoint by validation."""
    return entry.get("training", {}).get("kept") == "last"


def _validation_role(entry: dict[str, Any]) -> str:
    """What the validation rows did: pick the best checkpoint, or only show the curves."""
    if _kept_last(entry):
        return "were scored every epoch to follow the run (the weights are those of its last epoch)"
    return "picked the best checkpoint"


def _tags(kind: str, entry: dict[str, Any], conditional: bool = False) -> list[str]:
    if kind == "table":
        task = "tabular-" + ("classification" if entry["hparams"]["input_table"]["target"]["task"] == "classification"
                             else "regression")
        return [task, entry["class_path"].rsplit(".", 1)[-1].lower(), "pytorch-lightning", "safetensors"]
    task = {"classifier": "image-classification", "autoencoder": "image-to-image", "vae": "unconditional-image-generation",
            "gan": "unconditional-image-generation"}[kind]
    if conditional:
        task = "class-conditional-image-generation"
    return [task, entry["class_path"].rsplit(".", 1)[-1].lower(), "pytorch-lightning", "safetensors"]


def _use(name: str, kind: str, entry: dict[str, Any], conditional: bool = False) -> list[str]:
    load = ["```python", "import zoo", "", f'model = zoo.load_pretrained("{name}")  # eval mode, CPU; sha256 checked']
    if kind == "classifier":
        names = entry.get("hparams", {}).get("class_names")
        task = entry.get("hparams", {}).get("task", "multiclass")
        scores = {"binary": "model(images).sigmoid()  # the probability of the second class",
                  "regression": "model(images)"}.get(task, "model(images).softmax(1)  # class probabilities")
        load += ["# images: (N, C, H, W) floats in [0, 1]", f"scores = {scores}", "```"]
        if names:
            load += ["", "Classes, in output order: " + ", ".join(f"`{n}`" for n in names) + "."]
        load += _input_contract(entry.get("hparams", {}).get("input_framing"))
        commands = [f"zoo infer {name} my_images/ --output predictions.csv"]
    elif conditional:
        names = entry["hparams"].get("class_names") or [str(i) for i in range(entry["hparams"]["num_classes"])]
        load += [f'images = model.sample(16, labels="{names[-3]}")  # (16, 1, 28, 28) in [0, 1], all of class {names[-3]}',
                 "grid = model.sample(100)  # without labels: the classes in turn, 10 of each"]
        if kind == "vae":
            load += ["# images (N, 1, 28, 28) in [0, 1] and their classes labels (N,) as class indices:",
                     "reconstructions = model(images, labels)"]
        load += ["```", "", "Classes (`labels` takes an index or a name): " + ", ".join(f"`{n}`" for n in names) + "."]
        commands = [f"zoo sample {name} 16 --output samples/ --label {names[-3]}"]
    elif kind == "gan":
        load += ["images = model.sample(16)  # (16, 1, 28, 28) in [0, 1]", "```"]
        commands = [f"zoo sample {name} 16 --output samples/"]
    else:
        load += ["reconstructions = model(images)  # images: (N, 1, 28, 28) floats in [0, 1]"]
        load += ["samples = model.sample(16)" if kind == "vae" else "codes = model.encode(images)", "```"]
        commands = [f"zoo infer {name} my_images/ --output reconstructions/"]
        commands += [f"zoo sample {name} 16 --output samples/"] if kind == "vae" else []
    commands.append(f"zoo export {name}    # {name}.onnx, checked against the model")
    return ["## Use", "", *load, "", "From the command line, and as a file for deployment:", "", "```bash", *commands,
            "```", ""]


def _input_contract(input_framing: str | None) -> list[str]:
    """What the weights expect of their images (``input_framing``, see :mod:`zoo.data.framing`), and what
    ``zoo infer`` does about it; nothing for weights that record no framing."""
    from zoo.data.framing import get_framing

    if input_framing is None:
        return []
    framing = get_framing(input_framing)
    text = f"Inputs: images as {framing.title} frames them ({framing.summary}): {framing.source}. "
    if framing.reproduced:
        text += ("`zoo infer` and `zoo.predict_files` bring image files into that format by themselves (a photo or "
                 "scan of dark ink on light paper is inverted, cropped to its content, fitted and centred; "
                 "`--preprocess plain` turns it off); in Python, `zoo.data.framing.frame_image` does it.")
    else:
        text += "`zoo infer` does not reproduce this format: give it images like that."
    return ["", text]


def _data(entry: dict[str, Any], dataset: dict[str, Any] | None) -> list[str]:
    if dataset is None:
        return []
    lines = ["## Data", "", f"{dataset['title']}: {dataset['about']}."]
    args = entry.get("datamodule", {}).get("init_args", {})
    if "val_size" in args:
        lines.append(f"Training used {dataset['train_size'] - args['val_size']:,} of the training images; "
                     f"{args['val_size']:,} (drawn with seed {args.get('seed', 0)}) picked the best checkpoint, and "
                     "the test split was used only for the numbers below.")
    augment = ([f"random shifts of up to {args['shift']} pixel{'s' if args['shift'] != 1 else ''}"] if args.get("shift") else []) + (
        ["random horizontal flips"] if args.get("hflip") else [])
    if augment:
        lines.append(f"Training augmentation: {' and '.join(augment)}.")
    return [*lines, "", f"License of the data: {dataset['license']}.", ""]


def _metrics(entry: dict[str, Any], report: dict[str, Any] | None, dataset: dict[str, Any] | None,
             kind: str = "classifier") -> list[str]:
    metrics = entry.get("metrics") or {}
    if not metrics:
        return []
    table = kind == "table"
    kept = "its last epoch's weights" if _kept_last(entry) else "its best validation checkpoint"
    if entry.get("recipe") and dataset and table:
        protocol = (f"On the test rows of the recipe's split, by the training recipe ({kept}, "
                    "then `trainer.test`); `zoo evaluate` re-measures them.")
    elif entry.get("recipe") and dataset:
        protocol = (f"On the {dataset['title']} test split (10,000 images), by the training recipe ({kept}, "
                    "then `trainer.test`); `zoo evaluate` re-measures them.")
    else:
        protocol = "As recorded with the weights (`save_pretrained(model, folder, metrics=...)`)."
    lines = ["## Measured", "", protocol, "", "| metric | value | what it is |", "|---|---:|---|"]
    for key, value in sorted(metrics.items()):
        short = key.split("/", 1)[-1]
        shown = f"{100 * value:.2f} %" if short == "acc" else f"{value:.4g}"
        lines.append(f"| `{key}` | {shown} | {(TABLE_METRICS if table else METRICS).get(short, '')} |")
    lines.append("")
    if report and report.get("per_class"):
        top_k = report.get("top_k_accuracy") or {}
        if top_k:
            lines += ["Top-k accuracy: " + ", ".join(f"top-{k} {100 * v:.2f} %" for k, v in top_k.items()) + ".", ""]
        lines += [f"| class | precision | recall | F1 | test {'rows' if table else 'images'} |", "|---|---:|---:|---:|---:|"]
        for row in report["per_class"]:
            lines.append(f"| {row['class']} | {100 * row['precision']:.2f} % | {100 * row['recall']:.2f} % | "
                         f"{100 * row['f1']:.2f} % | {row['support']:,} |")
        lines.append("")
        lines += _confusions(report, samples="rows" if table else "images")
    return lines


def _confusions(report: dict[str, Any], count: int = 3, samples: str = "images") -> list[str]:
    matrix, names = report.get("confusion_matrix"), [row["class"] for row in report["per_class"]]
    if not matrix:
        return []
    pairs = sorted(((matrix[t][p], names[t], names[p]) for t in range(len(names)) for p in range(len(names)) if t != p),
                   reverse=True)[:count]
    shown = "; ".join(f"{true} read as {predicted}: {n}" for n, true, predicted in pairs if n)
    return [f"The most frequent confusions (true → predicted, test {samples}): {shown}.", ""] if shown else []


def _reproduce(entry: dict[str, Any]) -> list[str]:
    lines = ["## Provenance", ""]
    if entry.get("recipe"):
        lines += ["With the package installed (`pip install .` in the repository), from any folder:", "",
                  "```bash", entry["recipe"], "```", ""]
    facts = []
    if "seed" in entry:
        facts.append(f"seed {entry['seed']}")
    versions = entry.get("trained_with") or {}
    if versions:
        facts.append("trained with " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    facts.append(f"weights sha256 `{entry['sha256']}`")
    text = "; ".join(facts)
    lines += [text[0].upper() + text[1:] + ".", ""]
    training = entry.get("training")
    if training:
        minutes = training["fit_seconds"] / 60
        took = f"{minutes:.0f} min" if minutes >= 10 else f"{minutes:.1f} min"
        lines += [f"Training (`fit`, {training['epochs']} epochs) took {took} on {training['hardware']}"
                  + (", counting only the part after the last resume" if training.get("resumed") else "") + "."
                  + (f" It started from the weights `{training['started_from']}`, whose training came first."
                     if training.get("started_from") else ""), ""]
    return lines


def _limitations(kind: str, dataset: dict[str, Any] | None, conditional: bool = False) -> list[str]:
    data = dataset["title"] if dataset else "its training data"
    like = f"images like {data}'s" + (": one centred object on a plain background, 28×28 grayscale" if dataset else "")
    text = {
        "table": f"A baseline for rows like {data}'s: the same columns, measured the same way. Rows far outside the "
                 "training rows' range still get an answer, which means nothing; the card's numbers come from a few "
                 "dozen test rows, so they are rough.",
        "classifier": f"A baseline and a starting point for fine-tuning, for {like}. On anything else it still "
                      "answers, with probabilities that mean nothing.",
        "autoencoder": f"Reconstructs images like {data}'s; it is not a general image codec, and a poor reconstruction "
                       "is a sign that an image is unlike the training data, not a calibrated anomaly score.",
        "vae": f"Generates and reconstructs images like {data}'s, for teaching and as a likelihood baseline; its "
               "samples are blurry, as a VAE with a factorised Bernoulli decoder's are"
               + (". Ask it for a class with `labels`; `label_acc` says how often it draws that class. It reconstructs "
                  "an image only given its class, so `zoo infer` does not take it." if conditional else "."),
        "gan": f"Generates images like {data}'s, for teaching; the Fréchet distance above says how far its samples are "
               "from real ones (10,000 real training images score 2.25 on the same measure)"
               + (": ask it for a class with `labels`, and `label_acc` says how often it draws that class."
                  if conditional else ", and it cannot be asked for a particular class."),
    }[kind]
    return ["## Intended use and limitations", "", text, "Not for decisions about people.", ""]


def write_cards(weights_dir: str | Path) -> list[Path]:
    """Write ``cards/<name>.md`` for every weight in ``weights_dir/manifest.json``, with its report
    (``zoo evaluate <name> --report weights_dir/reports/<name>``) where there is one."""
    root = Path(weights_dir)
    manifest = json.loads((root / "manifest.json").read_text())
    written = []
    for name, entry in sorted(manifest.items()):
        report_path = root / REPORTS_DIR / name / "metrics.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        path = root / CARDS_DIR / f"{name}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(model_card(name, entry, report, pictures=f"../{REPORTS_DIR}/{name}"))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m zoo.cards", description=write_cards.__doc__)
    parser.add_argument("weights_dir", help="a folder with manifest.json: weights/ in the repository")
    for path in write_cards(parser.parse_args(argv).weights_dir):
        print(path)


if __name__ == "__main__":
    main()
