"""The sample-quality measures on inputs whose answer is known, and the judge on real MNIST."""

import pytest
import torch
from torch import nn

from zoo.quality import ClassCoverage, SampleQuality


class _Dims:
    def __init__(self, d):
        self.num_features = d


class IdentityJudge(nn.Module):
    """A 'classifier' whose features and logits are the input vector itself (N, d)."""

    def __init__(self, d):
        super().__init__()
        self.net, self.num_outputs = _Dims(d), d

    def forward_features(self, x):
        return x.flatten(1)

    def forward(self, x):
        return x.flatten(1)


def _fid(real, fake, d):
    quality = SampleQuality(IdentityJudge(d))
    for chunk in real.split(5000):
        quality.update(chunk, real=True)
    for chunk in fake.split(5000):
        quality.update(chunk, real=False)
    return quality.compute()


def test_distance_of_a_set_to_itself_is_zero():
    x = torch.randn(2000, 6) @ torch.randn(6, 6)  # correlated features
    assert _fid(x, x, 6)["fid_lenet"].item() == pytest.approx(0.0, abs=1e-3)


def test_shifted_and_scaled_gaussians_give_the_closed_form_distance():
    # N(0, I) vs N(m, s^2 I) in d dims: |m|^2 + d (1 + s^2 - 2 s).
    torch.manual_seed(0)
    d, s = 4, 2.0
    m = torch.tensor([1.0, -2.0, 0.5, 0.0])
    real, fake = torch.randn(40000, d), m + s * torch.randn(40000, d)
    expected = m.square().sum().item() + d * (1 + s**2 - 2 * s)  # 5.25 + 4 = 9.25
    assert _fid(real, fake, d)["fid_lenet"].item() == pytest.approx(expected, rel=0.03)


def test_coverage_counts_the_predicted_classes():
    coverage = ClassCoverage(IdentityJudge(3), num_classes=3)
    coverage.update(torch.eye(3)[[0, 1, 1, 1]])  # argmax gives classes 0, 1, 1, 1
    coverage.update(torch.eye(3)[[2, 2, 2, 2]])
    assert coverage.compute().tolist() == [0.125, 0.375, 0.5]


def test_label_accuracy_is_the_share_classified_as_asked_and_nan_without_labels():
    coverage = ClassCoverage(IdentityJudge(3), num_classes=3)
    coverage.update(torch.eye(3)[[0, 1, 1, 1]])  # no labels: counted for coverage only
    assert coverage.label_accuracy().isnan()
    coverage.update(torch.eye(3)[[0, 1, 2, 2]], torch.tensor([0, 1, 1, 2]))  # 3 of 4 as asked
    assert coverage.label_accuracy().item() == 0.75


def test_sample_quality_reports_min_and_max_share_of_generated_images_only():
    quality = SampleQuality(IdentityJudge(3))
    quality.update(torch.eye(3)[[0, 0, 0, 0]], real=True)  # real images do not count for coverage
    quality.update(torch.eye(3)[[0, 1, 1, 2]] + 0.01 * torch.randn(4, 3), real=False)
    results = quality.compute()
    assert results["coverage_min"].item() == 0.25 and results["coverage_max"].item() == 0.5
    quality.reset()
    quality.update(torch.eye(3)[[2, 2]], real=False)
    assert quality.coverage.compute().tolist() == [0.0, 0.0, 1.0]


def test_lenet_judge_on_real_mnist(data_dir):
    """Protocol sanity check: 10,000 real training images are close to the test split and cover every
    digit evenly; uniform noise is far away and collapses onto few classes."""
    from zoo.data.vision import MNISTDataModule

    data = MNISTDataModule(data_dir=str(data_dir))
    test, train = data.load_split(train=False)[0], data.load_split(train=True)[0][:10000]
    quality = SampleQuality()  # the shipped lenet5_mnist
    quality.update(test.float() / 255, real=True)
    quality.update(train.float() / 255, real=False)
    real = quality.compute()
    quality.reset()
    quality.update(test.float() / 255, real=True)
    quality.update(torch.rand(10000, 1, 28, 28, generator=torch.Generator().manual_seed(0)), real=False)
    noise = quality.compute()
    assert real["fid_lenet"] < 5 and noise["fid_lenet"] > 500
    assert 0.05 < real["coverage_min"] and real["coverage_max"] < 0.15
    assert noise["coverage_max"] > 0.5
