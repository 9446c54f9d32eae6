import re
import subprocess
import sys

import pytest
import torch

import zoo
from tests.conftest import REPO


def test_import_is_lazy():
    code = "import sys, zoo; print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_lists_are_sorted_and_complete():
    for names in (zoo.list_models(), zoo.list_datamodules(), zoo.list_pretrained()):
        assert names == sorted(names)
    assert {"lenet5", "mlp"} <= set(zoo.list_models())
    assert {"cifar10", "digits", "fashion_mnist", "function", "mnist"} <= set(zoo.list_datamodules())
    assert {"lenet5_mnist", "mlp_mnist"} <= set(zoo.list_pretrained())


def test_create_model_passes_hparams():
    model = zoo.create_model("lenet5", num_classes=7, in_channels=3, image_size=32)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    assert model.hparams.num_classes == 7


@pytest.mark.parametrize(
    "create, kind, valid",
    [(zoo.create_model, "model", ".*lenet5, .*mlp"), (zoo.create_datamodule, "datamodule", "cifar10, digits")],
)
def test_unknown_names_list_the_valid_ones(create, kind, valid):
    with pytest.raises(KeyError, match=f"unknown {kind} 'nope'; valid names: {valid}"):
        create("nope")


def test_create_datamodule_passes_kwargs(tmp_path):
    dm = zoo.create_datamodule("mnist", data_dir=tmp_path, batch_size=32)
    assert dm.batch_size == 32 and dm.data_dir == tmp_path


def test_readme_python_api_example_runs(in_tmp):
    """The README's Python API block, run as written."""
    block = re.search(r"## Python API\n\n```python\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["logits"].shape == (8, 10) and scope["features"].shape == (8, 84)
    assert scope["names"] == [str(d) for d in range(10)]
    assert (in_tmp / "my_lenet" / "model.safetensors").exists()
