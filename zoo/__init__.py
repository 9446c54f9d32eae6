"""lightning-zoo: classic deep-learning architectures as Lightning modules, with verified weights.

The top-level API is small and lazy: ``import zoo`` imports neither torch nor lightning until a
function below is called.

    >>> import zoo
    >>> zoo.list_models()                      # doctest: +SKIP
    ['ae', 'alexnet', 'alexnet_small', 'dae', 'gan', 'lenet5', 'lstm', ...]
    >>> model = zoo.create_model("lenet5", num_classes=10)          # doctest: +SKIP
    >>> model = zoo.load_pretrained("lenet5_mnist")                  # doctest: +SKIP
"""

from zoo.registry import create_datamodule, create_model, list_datamodules, list_models

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "create_datamodule",
    "create_model",
    "list_datamodules",
    "list_models",
    "list_pretrained",
    "load_pretrained",
    "predict_files",
    "predict_table",
]


def list_pretrained() -> list[str]:
    """Names of the weights shipped inside the package (see ``zoo list``)."""
    from zoo.weights import shipped_names

    return shipped_names()


def load_pretrained(name_or_dir):
    """Load shipped weights by name, or a folder written by ``save_pretrained``, in eval mode on the CPU.

    The sha256 of the weights file is checked and every key and shape must match; no pickle is ever
    loaded. See :func:`zoo.weights.load_pretrained`.
    """
    from zoo.weights import load_pretrained as load

    return load(name_or_dir)


def predict_files(weights, paths, top_k: int = 5, batch_size: int = 256, skip_bad: bool = False,
                  preprocess: str = "auto"):
    """Class predictions for image files and folders with a classifier (``zoo infer`` from Python).

    Returns one row per image (``path``, ``class``, ``probability``, ``top_k``) and the images
    skipped as unreadable (only with ``skip_bad``). ``preprocess="auto"`` brings the images into the
    format the weights record (MNIST's weights: light digit on dark, 20x20 box centred by mass),
    ``"plain"`` only resizes and centre-crops them. See :func:`zoo.infer.predict_files`.
    """
    from zoo.infer import predict_files as predict

    return predict(weights, paths, top_k=top_k, batch_size=batch_size, skip_bad=skip_bad, preprocess=preprocess)


def predict_table(weights, source, batch_size: int = 4096):
    """Predictions for raw table rows (a CSV or Parquet file, or a pandas DataFrame) by weights trained on a
    table (``zoo infer WEIGHTS rows.csv`` from Python): the weights' own preprocessing is applied.

    Returns one row per input row (``id``, then ``class`` and ``probability``, or a value per target column in
    the target's units), and the input columns the model does not use. See :func:`zoo.infer.predict_table`.
    """
    from zoo.infer import predict_table as predict

    return predict(weights, source, batch_size=batch_size)
