"""Property-based tests: random shapes, dtypes and values thrown at every registered model's input
validation and every DataModule's arguments produce only the documented errors."""

import inspect

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo
from tests.cases import all_cases

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.int64, torch.bool]
FILLS = ["unit", "pixels", "normal", "nan"]
CASES = {}
for _case in all_cases():  # one case per model name is enough here: the first, a single-input one
    CASES.setdefault(_case.name, _case)


def _tensor(shape, dtype, fill, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=generator)
    x = {"unit": x, "pixels": x * 255, "normal": torch.randn(shape, generator=generator), "nan": x.fill_(float("nan"))}[fill]
    return x.to(dtype)


@st.composite
def inputs(draw, valid_shape):
    # Half of the draws keep the valid sample shape so that dtype and value checks are reached too.
    if draw(st.booleans()):
        shape = (draw(st.integers(0, 4)), *valid_shape)
    else:
        shape = tuple(draw(st.lists(st.integers(0, 33), min_size=0, max_size=5)))
    return _tensor(shape, draw(st.sampled_from(DTYPES)), draw(st.sampled_from(FILLS)), draw(st.integers(0, 2**16)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_input_validation_raises_only_documented_errors(name):
    case = CASES[name]
    model = zoo.create_model(name, **case.hparams).eval()
    valid_shape = tuple(case.make_input().shape[1:])

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(inputs(valid_shape))
    def check(x):
        try:
            with torch.no_grad():
                out = model(x)
        except (ValueError, TypeError) as err:
            assert f"{type(model).__name__} " in str(err) or "expects" in str(err), str(err)
            return
        assert isinstance(out, torch.Tensor) and out.shape[0] == x.shape[0]

    check()


FUZZED_ARGS = {
    "batch_size": st.integers(-3, 300),
    "val_size": st.integers(-3, 2000),
    "shift": st.integers(-2, 5),
    "num_workers": st.integers(-2, 2),
    "seed": st.integers(-(2**31), 2**31),
    "window": st.integers(-2, 50),
    "horizon": st.integers(-2, 5),
    "val_fraction": st.floats(-0.5, 1.5),
    "test_fraction": st.floats(-0.5, 1.5),
}


def _required_args(name, tmp_path):
    """The arguments without defaults that a DataModule needs before any other can be tried."""
    if name == "tabular":
        return {"table": "wine"}
    if name == "timeseries":
        return {"series": [float(i % 7) for i in range(300)]}
    if name == "image_folder":
        from PIL import Image

        for label in ("cats", "dogs"):
            (tmp_path / "images" / label).mkdir(parents=True, exist_ok=True)
            for i in range(3):
                Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / "images" / label / f"{i}.png")
        return {"root": str(tmp_path / "images")}
    return {}


@pytest.mark.parametrize("name", zoo.list_datamodules())
def test_datamodule_arguments_raise_only_documented_errors(name, tmp_path):
    required = _required_args(name, tmp_path)
    cls = type(zoo.create_datamodule(name, **required))
    accepted = set(inspect.signature(cls.__init__).parameters)
    for base in cls.__mro__[1:]:  # **kwargs forwarded to a base class
        if "kwargs" in accepted and "__init__" in vars(base):
            accepted |= set(inspect.signature(base.__init__).parameters)
    fuzzed = {k: v for k, v in FUZZED_ARGS.items() if k in accepted}
    assert "batch_size" in fuzzed

    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries(fuzzed))
    def check(kwargs):
        try:
            zoo.create_datamodule(name, **required, **kwargs)
        except (ValueError, TypeError) as err:
            assert "must be" in str(err) or "must name" in str(err), str(err)
            return
        assert kwargs["batch_size"] >= 1

    check()
