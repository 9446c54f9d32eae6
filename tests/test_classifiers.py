"""Classifier specifics: input validation, hyperparameter checks and the knobs of the shared training logic."""

import pytest
import torch

import zoo
from tests.fakes import RandomImages, quiet_trainer
from zoo.models.supervised import SupervisedModule
from zoo.optim import OPTIMIZERS, SCHEDULERS

@pytest.fixture(params=["mlp", "lenet5"])
def model(request):
    torch.manual_seed(0)
    return zoo.create_model(request.param)


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (torch.rand(2, 3, 28, 28), ValueError, r"expects input of shape \(N, 1, 28, 28\), got \(2, 3, 28, 28\)"),
        (torch.rand(1, 28, 28), ValueError, r"got \(1, 28, 28\)"),
        (torch.rand(2, 1, 32, 32), ValueError, r"got \(2, 1, 32, 32\)"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), TypeError, r"uint8 \(images in 0-255: use x.float\(\) / 255\)"),
        ([[0.0]], TypeError, "expects a torch.Tensor"),
    ],
)
def test_bad_input_names_expected_and_got(model, bad, error, message):
    with pytest.raises(error, match=message):
        model(bad)


@pytest.mark.parametrize(
    "hparams, message",
    [
        (dict(lr=-0.1), "lr must be > 0, got -0.1"),
        (dict(optimizer="lbfgs"), "optimizer must be one of"),
        (dict(scheduler="warm"), "scheduler must be one of"),
        (dict(weight_decay=-1.0), "weight_decay must be >= 0"),
        (dict(l1=-1.0), "l1 must be >= 0"),
        (dict(mean=[0.5]), "mean and std must be given together"),
        (dict(mean=[0.5], std=[0.0]), "std must be positive"),
        (dict(task="ranking"), "task must be"),
        (dict(label_smoothing=1.0), r"label_smoothing must be in \[0, 1\), got 1.0"),
    ],
)
def test_bad_hparams_are_refused_with_the_field_named(hparams, message):
    with pytest.raises(ValueError, match=message):
        zoo.create_model("lenet5", **hparams)


def test_normalisation_happens_inside_the_model():
    model = zoo.create_model("mlp", hidden_sizes=[], mean=[0.5], std=[0.25])
    x = torch.rand(3, 1, 28, 28)
    expected = model.net((x - 0.5) / 0.25)
    assert torch.allclose(model(x), expected)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "prelu", "elu", "tanh", "sigmoid"])
@pytest.mark.parametrize("init", ["default", "xavier", "kaiming"])
def test_mlp_activations_and_inits(activation, init):
    model = zoo.create_model("mlp", hidden_sizes=[16], activation=activation, init=init, batch_norm=True, dropout=0.1)
    out = model(torch.rand(4, 1, 28, 28))
    assert out.shape == (4, 10) and torch.isfinite(out).all()


def test_mlp_init_schemes_change_weight_scale():
    torch.manual_seed(0)
    xavier = zoo.create_model("mlp", hidden_sizes=[256], init="xavier", activation="tanh").net.features[1].weight
    kaiming = zoo.create_model("mlp", hidden_sizes=[256], init="kaiming", activation="relu").net.features[1].weight
    # Glorot: Var = gain^2 * 2 / (fan_in + fan_out) with gain 5/3; He: Var = 2 / fan_in.
    assert xavier.std().item() == pytest.approx((5 / 3) * (2 / (784 + 256)) ** 0.5, rel=0.05)
    assert kaiming.std().item() == pytest.approx((2 / 784) ** 0.5, rel=0.05)


def test_binary_and_regression_heads():
    binary = zoo.create_model("mlp", task="binary", input_shape=[4], hidden_sizes=[8])
    assert binary.monitor == "val/acc" and binary(torch.rand(3, 4)).shape == (3, 1)
    loss, _ = binary._loss(binary(torch.rand(3, 4)), torch.tensor([0, 1, 1]))
    assert loss.ndim == 0
    regression = zoo.create_model("mlp", task="regression", num_classes=1, input_shape=[1], regression_loss="mae")
    assert regression.monitor == "val/loss" and regression.monitor_mode == "min"
    out = regression(torch.zeros(2, 1))
    loss, _ = regression._loss(out, out.detach() + 2.0)
    assert loss.item() == pytest.approx(2.0)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_optimizer_and_schedule_trains(optimizer, scheduler, tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model("mlp", hidden_sizes=[16], optimizer=optimizer, scheduler=scheduler, lr=0.01)
    before = model.net.head.weight.clone()
    quiet_trainer(tmp_path, max_steps=3, limit_val_batches=0).fit(model, datamodule=RandomImages())
    assert not torch.equal(before, model.net.head.weight)


def test_l1_penalty_is_added_to_the_training_loss():
    torch.manual_seed(0)
    batch = (torch.rand(8, 1, 28, 28), torch.arange(8))
    plain = zoo.create_model("mlp", hidden_sizes=[8])
    penalised = zoo.create_model("mlp", hidden_sizes=[8], l1=0.01)
    penalised.load_state_dict(plain.state_dict())
    for m in (plain, penalised):
        m.log = m.log_dict = lambda *a, **k: None  # no trainer attached
    expected = 0.01 * sum(p.abs().sum() for p in plain.net.parameters() if p.ndim > 1)
    difference = penalised.training_step(batch, 0) - plain.training_step(batch, 0)
    assert difference.item() == pytest.approx(expected.item(), rel=1e-5)


def test_label_smoothing_is_the_smoothed_cross_entropy():
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    model = zoo.create_model("lenet5", label_smoothing=0.1)
    model.log = model.log_dict = lambda *a, **k: None  # no trainer attached
    logits = model(x)
    expected = 0.9 * torch.nn.functional.cross_entropy(logits, y) - 0.1 * logits.log_softmax(1).mean(1).mean()
    assert model.training_step((x, y), 0).item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="label_smoothing is for multiclass classifiers"):
        zoo.create_model("mlp", task="regression", num_classes=1, label_smoothing=0.1)


@pytest.mark.parametrize("activation, pool", [("relu", "max"), ("leaky_relu", "max"), ("tanh", "max"), ("relu", "avg")])
def test_lenet5_is_the_textbook_order_of_layers_in_values_and_gradients(activation, pool):
    # The net may pool before the activation where the two commute (zoo.nets.lenet): nothing else may change.
    net = zoo.create_model("lenet5", activation=activation, pool=pool).net
    act = {"relu": torch.nn.ReLU, "leaky_relu": torch.nn.LeakyReLU, "tanh": torch.nn.Tanh}[activation]
    pooling = torch.nn.MaxPool2d if pool == "max" else torch.nn.AvgPool2d
    textbook = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), act(), pooling(2), torch.nn.Conv2d(6, 16, 5), act(), pooling(2),
        torch.nn.Flatten(), torch.nn.Linear(400, 120), act(), torch.nn.Linear(120, 84), act(), torch.nn.Linear(84, 10))
    textbook.load_state_dict(dict(zip(textbook.state_dict(), net.state_dict().values())))
    x = torch.rand(16, 1, 28, 28)
    out, expected = net(x), textbook(x)
    assert torch.equal(out, expected)
    out.square().sum().backward()
    expected.square().sum().backward()
    for mine, theirs in zip(net.parameters(), textbook.parameters()):
        assert torch.equal(mine.grad, theirs.grad)


def test_lenet5_matches_the_paper_layout():
    net = zoo.create_model("lenet5").net
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 400), (120,), (84, 120), (84,), (10, 84), (10,)]
    assert sum(p.numel() for p in net.parameters()) == 61706
    assert issubclass(type(zoo.create_model("lenet5")), SupervisedModule)


@pytest.mark.parametrize("scale, message", [(255.0, r"got values in \[0, 255\] \(0-255 pixel values: divide by 255\)"),
                                            (-1.0, r"got values in \[-1, 0\]")])
def test_images_outside_unit_range_are_refused(model, scale, message):
    x = torch.zeros(2, 1, 28, 28)
    x[0, 0, 0, 0] = scale
    with pytest.raises(ValueError, match=message):
        model.eval()(x)


def test_regression_inputs_are_not_range_checked():
    model = zoo.create_model("mlp", task="regression", num_classes=1, input_shape=[1])
    assert model(torch.tensor([[-3.0], [250.0]])).shape == (2, 1)


def test_a_net_takes_the_models_hyperparameters_of_the_same_names():
    from zoo.nets.mlp import MLPNet

    class Declared(SupervisedModule):
        def __init__(self, hidden_sizes=(7,), activation="tanh", dropout=0.0, batch_norm=False, init="xavier", **kwargs):
            super().__init__(**kwargs)
            self.build_net(MLPNet, in_features=3, out_features=self.num_outputs)

    net = Declared(num_classes=4).net
    assert [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)] == [7, 4]
    assert isinstance(net.features[2], torch.nn.Tanh)

    class Undeclared(SupervisedModule):
        def __init__(self, hidden_sizes=(7,), **kwargs):
            super().__init__(**kwargs)
            self.build_net(MLPNet, in_features=3, out_features=self.num_outputs)

    with pytest.raises(TypeError, match="MLPNet takes activation, dropout, batch_norm, init, which Undeclared "
                                        "neither declares nor derives"):
        Undeclared()


def test_the_nets_of_the_models_leave_the_defaults_to_the_model():
    # Declared once: a default in the net too could drift from the model's (what --help and weights show).
    import inspect

    from zoo.nets.alexnet import AlexNetNet
    from zoo.nets.lenet import LeNet5Net
    from zoo.nets.rnn import RNNNet
    from zoo.nets.vgg import VGGNet

    for net_class in (LeNet5Net, VGGNet, AlexNetNet, RNNNet):
        defaults = [p.name for p in inspect.signature(net_class).parameters.values() if p.default is not p.empty]
        assert defaults == [], net_class


@pytest.mark.parametrize("name, hparams", [("lenet5", {}), ("alexnet_small", {}), ("vgg11", dict(width_divisor=16))])
def test_image_channels_are_checked_the_same_way_by_every_image_classifier(name, hparams):
    with pytest.raises(ValueError, match="in_channels must be 1 or 3, got 2"):
        zoo.create_model(name, in_channels=2, **hparams)
