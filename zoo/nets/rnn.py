"""Recurrent networks (Elman RNN, GRU, LSTM) over (N, T, F) sequences, with optional lengths.

Variable-length batches are packed (``pack_padded_sequence``), so padded steps never enter the
recurrence; the pooled feature of each sequence depends only on its first ``length`` steps.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.nets.layers import ClassifierNet

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
POOLINGS = ("last", "mean")


def check_lengths(lengths: torch.Tensor, batch_size: int, max_steps: int) -> torch.Tensor:
    """Validate per-sequence lengths and return them as an int64 CPU tensor (what packing needs)."""
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.is_floating_point() or lengths.ndim != 1 or len(lengths) != batch_size:
        raise ValueError(f"lengths must be integers of shape ({batch_size},), got dtype {lengths.dtype} "
                         f"and shape {tuple(lengths.shape)}")
    lengths = lengths.to("cpu", torch.int64)
    if len(lengths) and not (1 <= int(lengths.min()) and int(lengths.max()) <= max_steps):
        raise ValueError(f"lengths must be in [1, {max_steps}] (the padded sequence length), "
                         f"got min {int(lengths.min())} and max {int(lengths.max())}")
    return lengths


class RNNNet(ClassifierNet):
    """A stacked (optionally bidirectional) recurrent encoder with a linear head.

    The arguments have no defaults: :class:`zoo.models.rnn.RecurrentModule` declares them.

    Args:
        input_size: features per time step, F.
        out_features: size of the head's output (classes or forecast horizon).
        cell: ``rnn`` (Elman, tanh), ``gru`` (Cho et al. 2014) or ``lstm`` (Hochreiter &
            Schmidhuber 1997).
        hidden_size: units per direction in each layer.
        num_layers: stacked recurrent layers.
        bidirectional: also run each layer backwards in time and concatenate both directions.
        dropout: dropout between stacked layers and before the head.
        pooling: ``last`` (final hidden state of the top layer; for the backward direction that is
            its state after reading the whole sequence) or ``mean`` (average of the top layer's
            outputs over the valid steps).
    """

    def __init__(self, input_size: int, out_features: int, cell: str, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float, pooling: str) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        for field, value in (("input_size", input_size), ("out_features", out_features),
                             ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if int(value) < 1:
                raise ValueError(f"{field} must be >= 1, got {value}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.pooling = pooling
        self.num_directions = 2 if bidirectional else 1
        # nn.RNN/GRU/LSTM apply `dropout` between stacked layers only; with one layer it would warn.
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.num_features = self.num_directions * hidden_size
        self.head = nn.Linear(self.num_features, out_features)

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled sequence features (N, num_features) of x (N, T, F); ``lengths`` (N,) marks valid steps."""
        if lengths is None:
            outputs, state = self.rnn(x)  # outputs (N, T, D*H)
        else:
            lengths = check_lengths(lengths, x.shape[0], x.shape[1])
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            packed_outputs, state = self.rnn(packed)
            # Padded steps come back as zeros; total_length keeps T so the mask below lines up.
            outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=x.shape[1])
        if self.pooling == "mean":
            return self._masked_mean(outputs, lengths)
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM state is (h, c); (L*D, N, H)
        # The top layer's final state per direction; packing makes "final" the last *valid* step.
        top = hidden[-self.num_directions:]  # (D, N, H)
        return top.transpose(0, 1).reshape(x.shape[0], self.num_features)  # (N, D*H)

    @staticmethod
    def _masked_mean(outputs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if lengths is None:
            return outputs.mean(dim=1)
        lengths = lengths.to(outputs.device)
        steps = torch.arange(outputs.shape[1], device=outputs.device)
        mask = (steps[None, :] < lengths[:, None]).unsqueeze(-1).to(outputs.dtype)  # (N, T, 1)
        return (outputs * mask).sum(dim=1) / lengths[:, None].to(outputs.dtype)  # (N, D*H)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))  # (N, out_features)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, lengths))

    def backbone_stages(self) -> list[nn.Module]:
        return [self.rnn]  # the stacked layers are one module
