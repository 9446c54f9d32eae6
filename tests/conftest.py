import os
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

warnings.filterwarnings("ignore", ".*does not have many workers.*")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N runs N worker processes on N cores: each gets one thread, and so do the `zoo`
    # processes its tests start (they inherit the environment), or the cores are oversubscribed.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


# Every collected test's markers, before -m deselects any (tests/test_suite.py reads them).
COLLECTED_MARKERS = pytest.StashKey[dict[str, set[str]]]()


@pytest.hookimpl(tryfirst=True)  # before the -m option deselects tests
def pytest_collection_modifyitems(config, items):
    """Slow tests first: a parallel run (pytest -n) then ends on many short tests spread over the
    workers rather than on one long test that keeps a single worker busy while the others idle."""
    config.stash[COLLECTED_MARKERS] = {item.nodeid: {mark.name for mark in item.iter_markers()} for item in items}
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: file order otherwise


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
