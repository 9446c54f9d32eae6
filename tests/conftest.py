import os
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

warnings.filterwarnings("ignore", ".*does not have many workers.*")


def _shared_data_dir() -> Path:
    env = os.environ.get("ZOO_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real MNIST / Fashion-MNIST root. Missing data fails the test under CI and skips it elsewhere."""
    root = _shared_data_dir()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        message = f"real MNIST not found under {root}; set ZOO_DATA_DIR to the data root"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty folder so that logs and checkpoints never land in the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
