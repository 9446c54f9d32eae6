"""Time-series DataModules: sliding windows over one series, split chronologically.

The series is cut into train | val | test parts in time order *before* windowing, so no window
(input or target) straddles a boundary and no future value ever reaches an earlier split. The
normalisation is fitted on the training part only.

Row-wise MNIST / Fashion-MNIST need no DataModule of their own: the recurrent models read the
image DataModules' (N, 1, 28, 28) batches row by row.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from zoo.data.base import TensorBatchDataset, TensorDataModule


def read_csv_column(path: str | os.PathLike, column: str) -> np.ndarray:
    """One numeric column of a CSV file with a header row, as float64 (empty cells become NaN)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or column not in reader.fieldnames:
            found = ", ".join(reader.fieldnames or []) or "no header"
            raise ValueError(f"column {column!r} not found in {path}; columns: {found}")
        values = []
        for line, row in enumerate(reader, start=2):
            cell = (row[column] or "").strip()
            try:
                values.append(float(cell) if cell else math.nan)
            except ValueError:
                raise ValueError(f"{path}, line {line}: column {column!r} holds {cell!r}, not a number") from None
    return np.asarray(values, dtype=np.float64)


def sliding_windows(values: torch.Tensor, window: int, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All (input, target) pairs of a 1-D series: x (M, window, 1), y (M, horizon), M = len - window - horizon + 1."""
    pairs = values.unfold(0, window + horizon, 1)  # (M, window + horizon), stride 1
    return pairs[:, :window].unsqueeze(-1).contiguous(), pairs[:, window:].contiguous()


class TimeSeriesDataModule(TensorDataModule):
    """Forecasting windows over a user's series: ``x`` (N, window, 1) -> ``y`` (N, horizon).

    Give the series either directly (``series``) or as a CSV file and column name.

    Args:
        series: the values, in time order (a list, NumPy array or 1-D tensor).
        csv_path: a CSV file with a header row (used when ``series`` is None).
        column: the CSV column to read.
        window: past values the model sees.
        horizon: future values it predicts.
        val_fraction: share of the series (its middle part, in time order) for validation.
        test_fraction: share of the series (its end) for testing.
        normalize: standardise with the training part's mean and std (inputs and targets alike).
        batch_size: windows per batch (per process under DDP).
        num_workers: DataLoader workers; 0 is fastest for in-memory data.
        seed: seed of the order of the training windows.
    """

    def __init__(
        self,
        series: Sequence[float] | np.ndarray | torch.Tensor | None = None,
        csv_path: str | None = None,
        column: str | None = None,
        window: int = 24,
        horizon: int = 1,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        normalize: bool = True,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed, num_workers)
        if (series is None) == (csv_path is None):
            raise ValueError("give exactly one of series=... or csv_path=... (with column=...)")
        if csv_path is not None and not column:
            raise ValueError(f"column must name the CSV column to read from {csv_path}")
        for field, value in (("window", window), ("horizon", horizon)):
            if int(value) < 1:
                raise ValueError(f"{field} must be >= 1, got {value}")
        for field, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 < value < 1:
                raise ValueError(f"{field} must be in (0, 1), got {value}")
        if val_fraction + test_fraction >= 1:
            raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
        # A long series is data, not a hyperparameter: keep it out of hparams and logged configs.
        self.save_hyperparameters(ignore=["series"])
        self._series = series
        self.window, self.horizon = int(window), int(horizon)
        self.input_shape = (self.window, 1)
        self.split_ranges: dict[str, tuple[int, int]] = {}  # split -> [start, stop) indices into the series
        self.mean, self.std = 0.0, 1.0

    def load_series(self) -> np.ndarray:
        """The raw series as float64, checked for length and NaN."""
        if self._series is None:
            values = read_csv_column(self.hparams.csv_path, self.hparams.column)
        elif isinstance(self._series, torch.Tensor):
            values = self._series.detach().cpu().double().numpy()
        else:
            values = np.asarray(self._series, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"the series must be 1-D, got shape {values.shape}")
        missing = np.flatnonzero(~np.isfinite(values))
        if len(missing):
            raise ValueError(f"the series has {len(missing)} NaN/inf values (first at index {missing[0]}); "
                             f"fill or drop them before forecasting")
        return values

    def _split(self, n: int) -> dict[str, tuple[int, int]]:
        n_test = round(n * self.hparams.test_fraction)
        n_val = round(n * self.hparams.val_fraction)
        n_train = n - n_val - n_test
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
        need = self.window + self.horizon
        for split, (start, stop) in bounds.items():
            if stop - start < need:
                raise ValueError(
                    f"series too short: {n} values give the {split} split only {stop - start}, but one window "
                    f"needs window + horizon = {need}; use a longer series, a smaller window or other fractions")
        return bounds

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        values = self.load_series()
        self.split_ranges = self._split(len(values))
        start, stop = self.split_ranges["train"]
        if self.hparams.normalize:
            train_part = values[start:stop]
            # A constant training part has std 0; keep the scale then rather than divide by zero.
            self.mean, self.std = float(train_part.mean()), float(train_part.std()) or 1.0
        scaled = torch.from_numpy((values - self.mean) / self.std).float()
        for split, (start, stop) in self.split_ranges.items():
            self.datasets[split] = TensorBatchDataset(*sliding_windows(scaled[start:stop], self.window, self.horizon))

    def denormalize(self, values: torch.Tensor) -> torch.Tensor:
        """Map normalised predictions or targets back to the series' own units."""
        return values * self.std + self.mean


def noisy_sine(length: int, period: float, noise: float, seed: int) -> np.ndarray:
    """``sin(2 pi t / period) + noise * N(0, 1)`` for t = 0 .. length - 1, seeded."""
    t = np.arange(length)
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * t / period) + noise * rng.standard_normal(length)


class NoisySineDataModule(TimeSeriesDataModule):
    """A synthetic series with learnable structure: a sine wave plus Gaussian noise.

    The best possible one-step forecast has MSE ``noise**2`` (the noise itself), while the last-value
    baseline also pays the noise of the last observation and the wave's change over one step.

    Args:
        length: number of values.
        period: steps per sine cycle.
        noise: standard deviation of the added noise.
        seed: seed of the noise and of the order of the training windows.
        **kwargs: window, horizon, fractions and batch settings of :class:`TimeSeriesDataModule`.
    """

    def __init__(self, length: int = 3000, period: float = 40.0, noise: float = 0.1, seed: int = 0, **kwargs) -> None:
        for field, valid, rule in (("length", int(length) >= 1, ">= 1"), ("period", period > 0, "> 0"),
                                   ("noise", noise >= 0, ">= 0"), ("seed", int(seed) >= 0, ">= 0")):
            if not valid:
                raise ValueError(f"{field} must be {rule}, got {locals()[field]}")
        super().__init__(series=noisy_sine(int(length), period, noise, seed), seed=seed, **kwargs)
