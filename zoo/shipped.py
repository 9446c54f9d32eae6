"""Where the folders the package ships are: ``weights/`` and ``recipes/``.

A wheel installs each as a package inside ``zoo`` (``zoo/_weights``, ``zoo/_recipes``; see
pyproject.toml); a source checkout, or an editable install, reads the repository's top-level folder
next to the ``zoo`` package.
"""

from importlib import resources
from pathlib import Path


def shipped_dir(folder: str) -> Path:
    """The shipped ``folder`` (``"weights"`` or ``"recipes"``): ``zoo/_<folder>`` when installed from a
    wheel, else the repository's ``<folder>/``."""
    package_dir = Path(str(resources.files("zoo")))
    installed = package_dir / f"_{folder}"
    return installed if installed.is_dir() else package_dir.parent / folder
