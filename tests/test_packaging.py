"""Every lower bound of pyproject.toml is a version CI installs (the wheel itself: tests/test_pip_user.py)."""

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.compat  # the install, and that every lower bound is tested


def _lower_bounds() -> dict[str, str]:
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    own = "lightning-zoo[export,serve,tabular]"
    assert own in extras["dev"], "the development install exports and checks ONNX files, serves models and reads Parquet too"
    requirements = [*project["dependencies"], *(r for group in extras.values() for r in group if r != own)]
    bounds = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?>=([0-9.]+)", requirement.replace(" ", ""))
        assert match, f"{requirement!r}: every dependency needs a tested lower bound (name>=version)"
        bounds[match.group(1).lower()] = match.group(3)
    return bounds


def test_every_lower_bound_is_the_version_ci_installs():
    pinned = {}
    for line in (REPO / ".ci/lowest.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.lower()] = version
    from packaging.version import Version

    bounds = _lower_bounds()
    assert set(pinned) == set(bounds)
    for name, version in bounds.items():
        assert Version(pinned[name]) == Version(version), f"{name}: pyproject says >={version}, CI installs {pinned[name]}"
    assert "--constraint .ci/lowest.txt" in (REPO / ".ci/run").read_text()
