"""The same checks for every registered model: shape, finite output, gradients, fit, round trips."""

import pytest
import torch

import zoo
from tests.cases import all_cases, call
from tests.fakes import quiet_trainer
from zoo.weights import model_config

pytestmark = pytest.mark.compat  # save/load round trips and fast_dev_run fits of every model

CASES = all_cases()


def test_every_registered_model_has_a_case():
    assert sorted({case.name for case in CASES}) == zoo.list_models()


@pytest.fixture(params=CASES, ids=[case.id for case in CASES])
def case(request):
    return request.param


@pytest.fixture
def model(case):
    torch.manual_seed(0)
    return zoo.create_model(case.name, **case.hparams)


def test_output_shape_and_finite(case, model):
    output = call(model, case.make_input())
    if case.output_shape is not None:
        assert tuple(output.shape) == case.output_shape
    assert torch.isfinite(output).all()


def test_gradients_reach_every_parameter(case, model):
    case.scalar(model, case.make_input()).backward()
    # Parameters without requires_grad (a GAN's moving average of its generator) are not trained.
    without_grad = [n for n, p in model.named_parameters()
                    if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert without_grad == []


def test_fast_dev_run_fit_changes_the_weights(case, model, tmp_path):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quiet_trainer(tmp_path, fast_dev_run=2).fit(model, datamodule=case.make_datamodule())
    assert [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])], "no weight changed"


def test_save_pretrained_round_trip_gives_identical_outputs(case, model, tmp_path):
    model.eval()
    x = case.make_input()
    model.save_pretrained(tmp_path / "saved")
    loaded = type(model).from_pretrained(tmp_path / "saved")
    assert not loaded.training
    torch.manual_seed(1)
    expected = call(model, x)
    torch.manual_seed(1)
    assert torch.equal(expected, call(loaded, x))
    assert model_config(loaded) == model_config(model)


def test_lightning_checkpoint_round_trip(case, model, tmp_path):
    trainer = quiet_trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(model, datamodule=case.make_datamodule())
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = type(model).load_from_checkpoint(tmp_path / "m.ckpt", weights_only=True)
    x = case.make_input()
    torch.manual_seed(1)
    expected = call(model.eval(), x)
    torch.manual_seed(1)
    assert torch.equal(expected, call(loaded.eval(), x))
