import torch

from tests.cases import ModelCase
from tests.fakes import RandomImages
from zoo.data.base import InMemoryDataModule
from zoo.data.sequence import NoisySineDataModule


class RandomSequences(InMemoryDataModule):
    """Random float sequences (N, 12, 3) with labels ``i % 4``: 64 train (16 val) and 32 test."""

    input_shape, num_classes = (12, 3), 4

    def __init__(self, **kwargs):
        super().__init__(val_size=16, batch_size=16, **kwargs)

    def load_split(self, train):
        n = 64 if train else 32
        x = torch.randn(n, *self.input_shape, generator=torch.Generator().manual_seed(int(train)))
        return x, torch.arange(n) % self.num_classes


def _logsumexp(model, x):
    return model(x).logsumexp(1).sum()


CASES = [
    ModelCase("lstm", dict(hidden_size=16, mean=[0.1307], std=[0.3081]), make_datamodule=RandomImages,
              scalar=_logsumexp, output_shape=(4, 10)),
    ModelCase("lstm", dict(input_shape=[None, 3], num_classes=4, cell="gru", hidden_size=8, num_layers=2,
                           bidirectional=True, dropout=0.2, pooling="mean", mean=[0.0, 0.5, 1.0], std=[1.0, 2.0, 0.5]),
              make_input=lambda: torch.randn(4, 12, 3), make_datamodule=RandomSequences,
              scalar=_logsumexp, output_shape=(4, 4), id="gru-bidirectional-mean"),
    ModelCase("lstm", dict(input_shape=[12, 3], num_classes=4, cell="rnn", hidden_size=8),
              make_input=lambda: torch.randn(4, 12, 3), make_datamodule=RandomSequences,
              scalar=_logsumexp, output_shape=(4, 4), id="elman-rnn"),
    ModelCase("lstm_forecaster", dict(horizon=3, input_shape=[10, 1], hidden_size=8),
              make_input=lambda: torch.randn(4, 10, 1),
              make_datamodule=lambda: NoisySineDataModule(length=200, window=10, horizon=3, batch_size=16),
              output_shape=(4, 3)),
]
