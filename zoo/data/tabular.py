"""A user's table: a CSV or Parquet file (or a pandas DataFrame), one row per sample, one column to predict.

The rows are split into train | val | test (seeded, or by a ``split`` column the table carries), and
the preprocessing is fitted on the training rows only:

- numeric columns are standardised with the training mean and standard deviation; a missing value
  takes the training median, and each column that had missing values in training gets a 0/1 column
  that says which values were missing;
- categorical columns (text, or those named in ``categorical``) become one-hot columns, one per
  category seen in training and one for a missing value; a category training never saw is all zeros;
- a classification target becomes class indices (its values are the class names), a regression
  target is standardised like a numeric column.

The fitted preprocessing is plain data (:func:`fit_preprocessing`, a JSON-able dict): a model trained
on the table keeps it with its weights as ``input_table``, and :func:`encode_rows` turns raw rows into
the model's input with it (``zoo infer WEIGHTS rows.csv``).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from zoo.data.base import InMemoryDataModule, TensorBatchDataset, resolve_data_dir
from zoo.errors import DataError
from zoo.names import did_you_mean

if TYPE_CHECKING:  # pandas is imported where a table is read: `import zoo.data` does not need it
    import pandas as pd

PARQUET_EXTRA = 'pip install "lightning-zoo[tabular]"'
SKLEARN_TABLES = ("breast_cancer", "diabetes", "iris", "wine")
TASKS = ("auto", "classification", "regression")
SPLITS = ("train", "val", "test")
ID_COLUMN = "id"  # a column of this name labels the rows: never an input, and zoo infer writes it back
MISSING = "missing"  # the level a missing categorical value takes (its one-hot column is "<column>=missing")
MAX_CLASSES_AUTO = 20  # task="auto": an integer target with at most this many distinct values is a class label
PREPROCESSING_VERSION = 1


class TableError(DataError):
    """A table that cannot be read or used: the message names the file, the column and the row."""


# ----- reading ------------------------------------------------------------------------------------

def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (``.csv``, ``.tsv``, ``.txt``) or Parquet (``.parquet``, ``.pq``) file as a DataFrame.

    Raises:
        TableError: no such file, an unknown suffix, an empty file, or Parquet without pyarrow.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        if importlib.util.find_spec("pyarrow") is None:
            raise TableError(f"{path}: reading Parquet files needs pyarrow: {PARQUET_EXTRA}")
        frame = pd.read_parquet(path)
    elif suffix in (".csv", ".tsv", ".txt"):
        try:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        except pd.errors.EmptyDataError:
            raise TableError(f"{path} is empty: a table needs a header row and at least one row") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise TableError(f"{path} is not a readable CSV file: {str(err).splitlines()[0]}") from None
    else:
        raise TableError(f"{path}: name a .csv or .parquet file (got {suffix or 'no suffix'})")
    if len(frame) == 0:
        raise TableError(f"{path} has no rows: a table needs a header row and at least one row")
    return frame


def sklearn_table(name: str) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """One of scikit-learn's bundled tables (offline) with its target in the column ``target``, and the
    class names of each classification target (``{"target": [...]}``; empty for a regression table)."""
    from sklearn import datasets

    if name not in SKLEARN_TABLES:
        raise ValueError(f"table must be one of {', '.join(SKLEARN_TABLES)}, got {name!r}.{did_you_mean(name, SKLEARN_TABLES)}")
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    names = getattr(bunch, "target_names", None)
    if names is None or name == "diabetes":
        return frame, {}
    frame["target"] = [str(names[i]) for i in frame["target"]]  # the classes by name: class_0, malignant, setosa
    return frame, {"target": [str(n) for n in names]}


# ----- the preprocessing --------------------------------------------------------------------------

def _is_numeric(column: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def _category_text(value: Any) -> str | None:
    """A categorical cell as text (None: missing); 3.0 and 3 read alike, as a CSV with gaps reads integers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def numeric_values(column: pd.Series, name: str, where: str, rows: Sequence[str]) -> np.ndarray:
    """``column`` as float64 (missing: NaN); a cell that is not a number is refused, naming it and its row."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return column.astype("float64").to_numpy()
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna() & (column.astype(str).str.strip() != "")
    if bool(bad.any()):
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise TableError(f"{where}, {rows[i]}: column {name!r} holds {column.iloc[i]!r}, not a number "
                         f"(a numeric column in training){'' if bad.sum() == 1 else f'; {int(bad.sum())} such cells'}")
    return values.astype("float64").to_numpy()


def fit_preprocessing(train: pd.DataFrame, features: Sequence[str], categorical: Sequence[str], targets: Sequence[str],
                      task: str, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """The preprocessing, fitted on the training rows ``train``, as a JSON-able dict.

    Args:
        train: the training rows.
        features: the input columns, in order.
        categorical: those of them that are one-hot encoded.
        targets: the target column(s).
        task: ``classification`` or ``regression``.
        class_names: the classes in order (classification; None: the sorted values of the training target).
    """
    columns, names = [], []
    rows = row_labels(train, False)
    for name in features:
        if name in categorical:
            levels = sorted({text for text in map(_category_text, train[name]) if text is not None})
            columns.append({"name": name, "kind": "categorical", "dtype": str(train[name].dtype), "categories": levels})
            names += [f"{name}={level}" for level in levels] + [f"{name}={MISSING}"]
            continue
        values = numeric_values(train[name], name, "training table", rows)
        present = values[~np.isnan(values)]
        median = float(np.median(present)) if len(present) else 0.0
        filled = np.where(np.isnan(values), median, values)
        std = float(filled.std())
        entry = {"name": name, "kind": "numeric", "dtype": str(train[name].dtype), "median": median,
                 "mean": float(filled.mean()), "std": std if std > 1e-12 else 1.0,
                 "missing_indicator": bool(np.isnan(values).any())}
        columns.append(entry)
        names.append(name)
    names += [f"{c['name']}_missing" for c in columns if c.get("missing_indicator")]
    target: dict[str, Any] = {"columns": list(targets), "task": task}
    if task == "classification":
        values = train[targets[0]]
        target["classes"] = list(class_names) if class_names is not None else _sorted_classes(values)
    else:
        y = np.stack([numeric_values(train[t], t, "training table", rows) for t in targets], axis=1)
        if np.isnan(y).any():
            raise TableError(f"target {targets[0]!r} has missing values in the training rows: drop those rows")
        std = y.std(axis=0)
        target["mean"] = [float(v) for v in y.mean(axis=0)]
        target["std"] = [float(s) if s > 1e-12 else 1.0 for s in std]
    return {"version": PREPROCESSING_VERSION, "columns": columns, "features": names, "target": target,
            "id_column": ID_COLUMN}


def _sorted_classes(values: pd.Series) -> list[str]:
    present = [v for v in values.dropna().unique()]
    try:
        present = sorted(present)  # numbers in numeric order: 2 before 10
    except TypeError:
        present = sorted(present, key=str)
    return list(dict.fromkeys(_category_text(v) for v in present))


def row_labels(frame: pd.DataFrame, in_file: bool) -> list[str]:
    """How an error names each row: by its ``id``, else by its line in the file (the header is line 1)
    or its index in the DataFrame."""
    if ID_COLUMN in frame.columns:
        return [f"row {ID_COLUMN}={value}" for value in frame[ID_COLUMN]]
    if in_file:
        return [f"line {int(i) + 2}" for i in frame.index]
    return [f"row {i}" for i in frame.index]


def check_columns(frame: pd.DataFrame, preprocessing: dict[str, Any], source: str) -> list[str]:
    """Refuse rows without every input column (naming the missing ones); return the columns the model
    does not use (ignored), besides the ``id`` and target columns."""
    wanted = [c["name"] for c in preprocessing["columns"]]
    missing = [name for name in wanted if name not in frame.columns]
    if missing:
        near = did_you_mean(missing[0], [str(c) for c in frame.columns if c not in wanted])
        raise TableError(f"{source} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                         f"the model was trained on.{near} It needs: {', '.join(wanted)}")
    known = {*wanted, ID_COLUMN, *preprocessing["target"]["columns"]}
    return [str(c) for c in frame.columns if c not in known]


def encode_rows(frame: pd.DataFrame, preprocessing: dict[str, Any], source: str = "the rows",
                in_file: bool = False) -> torch.Tensor:
    """Raw rows as the model's input, float32 (N, len(preprocessing["features"])), by the fitted preprocessing.

    Columns the preprocessing does not name are ignored; a missing input column, or text in a numeric
    column, is refused with an error naming it (and the row).
    """
    check_columns(frame, preprocessing, source)
    rows = row_labels(frame, in_file)
    parts, indicators = [], []
    for column in preprocessing["columns"]:
        name = column["name"]
        if column["kind"] == "categorical":
            text = [_category_text(v) for v in frame[name]]
            levels = column["categories"] + [MISSING]
            onehot = np.zeros((len(frame), len(levels)), dtype=np.float32)
            index = {level: i for i, level in enumerate(column["categories"])}
            for r, value in enumerate(text):
                if value is None:
                    onehot[r, -1] = 1.0
                elif value in index:  # a category training never saw stays all zeros
                    onehot[r, index[value]] = 1.0
            parts.append(onehot)
            continue
        values = numeric_values(frame[name], name, source, rows)
        missing = np.isnan(values)
        values = (np.where(missing, column["median"], values) - column["mean"]) / column["std"]
        parts.append(values.astype(np.float32)[:, None])
        if column.get("missing_indicator"):
            indicators.append(missing.astype(np.float32)[:, None])
    x = np.concatenate([*parts, *indicators], axis=1) if parts or indicators else np.zeros((len(frame), 0), np.float32)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def encode_target(frame: pd.DataFrame, preprocessing: dict[str, Any], source: str, in_file: bool = False) -> torch.Tensor:
    """The target column(s) of ``frame``: class indices, int64 (N,), or standardised values, float32 (N, T)."""
    target = preprocessing["target"]
    rows = row_labels(frame, in_file)
    if target["task"] == "classification":
        index = {name: i for i, name in enumerate(target["classes"])}
        name = target["columns"][0]
        labels = []
        for r, value in enumerate(frame[name]):
            text = _category_text(value)
            if text not in index:
                what = "no class" if text is None else f"class {text!r}, which the training rows lack"
                raise TableError(f"{source}, {rows[r]}: target {name!r} holds {what}; the training classes: "
                                 f"{', '.join(target['classes'])}")
            labels.append(index[text])
        return torch.tensor(labels, dtype=torch.int64)
    y = np.stack([numeric_values(frame[t], t, source, rows) for t in target["columns"]], axis=1)
    if np.isnan(y).any():
        r = int(np.flatnonzero(np.isnan(y).any(axis=1))[0])
        raise TableError(f"{source}, {rows[r]}: the target has no value: drop the rows without one")
    y = (y - np.asarray(target["mean"])) / np.asarray(target["std"])
    return torch.from_numpy(y.astype(np.float32))


def decode_output(output: torch.Tensor, preprocessing: dict[str, Any]) -> list[dict[str, Any]]:
    """A model's output for encoded rows as predictions in the target's own terms, one dict per row:
    ``{"class", "probability"}`` for classification, ``{target column: value}`` for regression (in the
    target's units: the standardisation undone)."""
    target = preprocessing["target"]
    output = output.detach().float().cpu()
    if target["task"] == "classification":
        probabilities = output.softmax(dim=1)
        best, index = probabilities.max(dim=1)
        return [{"class": target["classes"][i], "probability": p} for i, p in zip(index.tolist(), best.tolist())]
    values = output.numpy() * np.asarray(target["std"]) + np.asarray(target["mean"])
    return [{name: float(v) for name, v in zip(target["columns"], row)} for row in values]


# ----- the DataModule -----------------------------------------------------------------------------

class TabularDataModule(InMemoryDataModule):
    """Rows of a table -> standardised, imputed and one-hot encoded features, float32 (N, F); targets:
    class indices (N,) for classification, standardised values (N, T) for regression.

    Give the table as a file (``path``), one of scikit-learn's bundled tables (``table``) or, in
    Python, a pandas DataFrame (``frame``). The preprocessing is fitted on the training rows only and
    kept by the model trained on them (``input_table``), so that ``zoo infer`` reads raw rows.
    A column named ``id`` labels the rows and is never an input.

    Args:
        path: a CSV or Parquet file with a header row (Parquet needs ``pip install "lightning-zoo[tabular]"``).
        table: a scikit-learn table by name: ``wine``, ``breast_cancer``, ``iris`` (classification) or
            ``diabetes`` (regression); its target column is ``target``. Read only when no ``path`` or
            ``frame`` is given, so a recipe's table gives way to ``--data.path``.
        target: the column to predict, or a list of columns (several regression targets).
        task: ``auto``: classification if the target is text or holds few distinct integers (at most
            20), else regression; or ``classification`` / ``regression``.
        categorical: the columns to one-hot encode (default: the non-numeric ones).
        split_column: a column saying which split each row is in (``train``, ``val`` or ``test``);
            None: seeded random splits of ``val_size`` and ``test_size``.
        val_size: the share of the rows for validation (without ``split_column``).
        test_size: the share of the rows for testing (without ``split_column``).
        seed: seed of the split and of the training order.
        batch_size: rows per batch (per process under DDP).
        num_workers: DataLoader workers; 0 is fastest for in-memory data.
        data_dir: the folder a relative ``path`` is read from (default: the current folder).
        frame: a pandas DataFrame instead of a file (Python only; not saved with the settings).
    """

    framing = None
    # The model settings this data decides (model_settings): zoo fit fills them into the model's arguments.
    decides_model_settings = True

    def __init__(
        self,
        path: str | None = None,
        table: str | None = None,
        target: str | list[str] | None = None,
        task: str = "auto",
        categorical: list[str] | None = None,
        split_column: str | None = None,
        val_size: float = 0.15,
        test_size: float = 0.15,
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        data_dir: str | None = None,
        frame: Any = None,
    ) -> None:
        if path is None and table is None and frame is None:
            raise ValueError("path, table or frame must name the table, got none of them")
        if path is not None and frame is not None:
            raise ValueError("path or frame must name the table, not both")
        if table is not None and table not in SKLEARN_TABLES:
            raise ValueError(f"table must be one of {', '.join(SKLEARN_TABLES)}, got {table!r}."
                             f"{did_you_mean(str(table), SKLEARN_TABLES)}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if not (isinstance(val_size, (int, float)) and 0 <= val_size < 1):
            raise ValueError(f"val_size must be a share of the rows in [0, 1), got {val_size}")
        if not (isinstance(test_size, (int, float)) and 0 <= test_size < 1) or val_size + test_size >= 1:
            raise ValueError(f"test_size must be a share of the rows in [0, 1) that leaves training rows "
                             f"beside val_size={val_size}, got {test_size}")
        if isinstance(target, (list, tuple)) and not target:
            raise ValueError("target must name a column, or a list of columns, got an empty list")
        super().__init__(data_dir=data_dir, batch_size=batch_size, val_size=0, seed=seed, num_workers=num_workers,
                         download=False)
        # Saved again from this signature: the settings, without the DataFrame (which no checkpoint keeps).
        self.save_hyperparameters(ignore=["frame"], logger=False)
        self._frame = frame
        self.preprocessing: dict[str, Any] | None = None  # fitted by prepare_table
        self._splits: dict[str, Any] | None = None
        self._choice: str | None = None  # the task task="auto" chose, in words, until setup says it

    # ----- what the table says --------------------------------------------------------------------

    def _source(self) -> str:
        hp = self.hparams
        if self._frame is not None:
            return "the DataFrame"
        if hp.path is not None:
            path = Path(hp.path).expanduser()
            if not path.is_absolute() and hp.data_dir is not None:
                path = resolve_data_dir(hp.data_dir) / path
            return str(path)
        return f"scikit-learn's {hp.table} table"

    def _in_file(self) -> bool:
        return self._frame is None and self.hparams.path is not None

    def _read(self) -> tuple[pd.DataFrame, dict[str, list[str]]]:
        import pandas as pd

        hp = self.hparams
        if self._frame is not None:
            if not isinstance(self._frame, pd.DataFrame):
                raise TableError(f"frame must be a pandas DataFrame, got {type(self._frame).__name__}")
            if len(self._frame) == 0:
                raise TableError("the DataFrame has no rows")
            return self._frame.reset_index(drop=True), {}
        if hp.path is not None:
            return read_table(self._source()), {}
        return sklearn_table(hp.table)

    def prepare_table(self) -> dict[str, Any]:
        """Read the table, split it and fit the preprocessing on its training rows (once); returns the
        preprocessing. ``setup`` calls it; call it yourself to see the settings before training."""
        if self.preprocessing is not None:
            return self.preprocessing
        hp = self.hparams
        frame, known_classes = self._read()
        frame.columns = [str(c) for c in frame.columns]
        source = self._source()
        targets = [hp.target] if isinstance(hp.target, str) else list(hp.target or [])
        if not targets:
            if hp.path is not None or self._frame is not None:
                raise TableError(f"name the column to predict with target (--data.target COLUMN); {source} has: "
                                 f"{', '.join(frame.columns)}")
            targets = ["target"]
        for name in [*targets, *(hp.categorical or []), *([hp.split_column] if hp.split_column else [])]:
            if name not in frame.columns:
                raise TableError(f"{source} has no column {name!r}.{did_you_mean(name, frame.columns)} "
                                 f"Its columns: {', '.join(frame.columns)}")
        task = self._task(frame, targets, source)
        features = [c for c in frame.columns if c not in (*targets, hp.split_column, ID_COLUMN)]
        if not features:
            raise TableError(f"{source} has no input columns besides the target {', '.join(targets)}")
        categorical = list(hp.categorical) if hp.categorical is not None else [
            c for c in features if not _is_numeric(frame[c])]
        self._refuse_stray_text(frame, features, categorical, source)
        if task == "classification":
            frame = frame[frame[targets[0]].notna()]
        splits = self._split(frame, source)
        classes = known_classes.get(targets[0]) if task == "classification" else None
        self.preprocessing = fit_preprocessing(splits["train"], features, categorical, targets, task, classes)
        self._splits = splits
        if hp.task == "auto":  # said when the splits are first set up (see setup)
            kind = (f"classification into {len(self.preprocessing['target']['classes'])} classes" if task == "classification"
                    else "regression")
            self._choice = f"TabularDataModule: target {', '.join(targets)} -> {kind} (task auto; --data.task chooses)"
        return self.preprocessing

    def _task(self, frame: pd.DataFrame, targets: list[str], source: str) -> str:
        hp = self.hparams
        numeric = [_is_numeric(frame[t]) for t in targets]
        if len(targets) > 1:
            if hp.task == "classification":
                raise TableError("task classification takes one target column; several are a regression's")
            if not all(numeric):
                text = targets[numeric.index(False)]
                raise TableError(f"several targets are regression targets, but {text!r} holds text in {source}")
            return "regression"
        if hp.task != "auto":
            if hp.task == "regression" and not numeric[0]:
                raise TableError(f"task regression needs a numeric target, but {targets[0]!r} holds text in {source}")
            return hp.task
        column = frame[targets[0]].dropna()
        if not numeric[0]:
            return "classification"
        values = column.astype("float64").to_numpy()
        whole = bool(np.all(np.equal(np.mod(values, 1), 0)))
        return "classification" if whole and column.nunique() <= MAX_CLASSES_AUTO else "regression"

    def _refuse_stray_text(self, frame, features, categorical, source) -> None:
        """A column of numbers with a few text cells is a mistake, not a category: name the cell."""
        import pandas as pd

        for name in features:
            if name in categorical and (self.hparams.categorical is not None or _is_numeric(frame[name])):
                continue
            column = frame[name]
            present = column.notna() & (column.astype(str).str.strip() != "")
            parsed = pd.to_numeric(column, errors="coerce").notna()
            numbers, cells = int((parsed & present).sum()), int(present.sum())
            if cells and numbers < cells and numbers >= 0.9 * cells:
                i = int(np.flatnonzero((present & ~parsed).to_numpy())[0])
                rows = row_labels(frame, self._in_file())
                raise TableError(f"{source}, {rows[i]}: column {name!r} holds {column.iloc[i]!r}, not a number, "
                                 f"among {numbers} numbers: fix the cell, or list the column in --data.categorical")

    def _split(self, frame: pd.DataFrame, source: str) -> dict[str, pd.DataFrame]:
        hp = self.hparams
        if hp.split_column is not None:
            labels = frame[hp.split_column].astype(str).str.strip().str.lower()
            unknown = sorted(set(labels) - set(SPLITS))
            if unknown:
                raise TableError(f"{source}: column {hp.split_column!r} must say train, val or test for each row, "
                                 f"it also holds {', '.join(map(repr, unknown[:5]))}")
            splits = {name: frame[(labels == name).to_numpy()] for name in SPLITS}
        else:
            order = np.random.default_rng(hp.seed).permutation(len(frame))
            n_test, n_val = round(hp.test_size * len(frame)), round(hp.val_size * len(frame))
            parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
            splits = {name: frame.iloc[np.sort(index)] for name, index in parts.items()}
        if len(splits["train"]) == 0:
            raise TableError(f"{source}: no training rows ({len(frame)} rows in all)")
        return splits

    def split_frames(self) -> dict[str, pd.DataFrame]:
        """The raw rows of each split, ``{"train", "val", "test"}`` (after :meth:`prepare_table`)."""
        self.prepare_table()
        return dict(self._splits)

    def model_settings(self) -> dict[str, Any]:
        """The model arguments this table decides: ``input_shape`` ([number of features]), ``task``
        (``multiclass`` or ``regression``) and ``num_classes`` (classes, or regression targets).
        ``zoo fit`` fills them in; in Python, ``zoo.create_model("mlp", **datamodule.model_settings())``."""
        pre = self.prepare_table()
        target = pre["target"]
        if target["task"] == "classification":
            return {"input_shape": [len(pre["features"])], "task": "multiclass", "num_classes": len(target["classes"])}
        return {"input_shape": [len(pre["features"])], "task": "regression", "num_classes": len(target["columns"])}

    @property
    def input_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.model_settings()["input_shape"])

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return self.model_settings()["num_classes"]

    @property
    def class_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.prepare_table()["target"].get("classes", ()))

    @property
    def table_preprocessing(self) -> dict[str, Any]:
        """The fitted preprocessing, which a model trained on this data keeps as ``input_table``."""
        return self.prepare_table()

    # ----- splits as tensors ----------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        pre = self.prepare_table()
        if self._choice is not None:  # one line, once, from the first process of a DDP run
            from lightning.pytorch.utilities import rank_zero_only

            if rank_zero_only.rank == 0:
                print(self._choice)
            self._choice = None
        source = self._source()
        for split in SPLITS:
            if split not in self.datasets:
                rows = self._splits[split]
                where = f"{source} ({split} rows)"
                in_file = self._in_file()
                self.datasets[split] = TensorBatchDataset(encode_rows(rows, pre, where, in_file),
                                                          encode_target(rows, pre, where, in_file))

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return x
