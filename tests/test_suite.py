"""The test suite's own promises: the everyday subset (-m "not slow") leaves out no test file but those
listed below, and CI's lowest-versions pass (-m compat) covers what depends on the dependencies' versions."""

import subprocess
import sys

from tests.conftest import COLLECTED_MARKERS, REPO

# Files of slow tests only, and why; the zoo code they run is run by everyday tests too.
ONLY_SLOW = {"test_ddp.py": "each test starts two training processes",
             "test_pip_user.py": "it builds the wheel and installs it into a new environment",
             "test_multinode.py": "each test starts two torchrun launches and a 2-process run"}
# What CI's second pass, with the lowest versions pyproject.toml allows, must still test.
COMPAT_FILES = {
    "test_cli.py", "test_cli_mistakes.py",  # the command line and its config parsing
    "test_run_output.py",  # what a run prints: Lightning's summary and progress-bar callbacks
    "test_data.py", "test_image_folder.py", "test_framing.py",  # reading datasets and image files
    "test_ddp.py", "test_multinode.py",  # DDP across processes, and across two "nodes" through torchrun
    "test_large_folders.py",  # image folders decoded to disk: image files, checkpoints and resume, DDP
    "test_tabular.py",  # reading CSV and Parquet tables (pandas, pyarrow)
    "test_defaults.py",  # every recipe through the CLI
    "test_every_model.py",  # save/load round trips, fast_dev_run fits
    "test_export.py",
    "test_packaging.py", "test_pip_user.py",  # the wheel, and what a pip user runs
    "test_readme.py",
    "test_resume.py",  # checkpoints and exact resumes
    "test_weights.py",  # weights loading, load_from_checkpoint(weights_only=True)
    "test_dynamics.py",  # the loggers' files (TensorBoard events and projector, W&B's run) read back
    "test_run_page.py",  # the run page from the CSV logger's metrics.csv and the callbacks' hooks
}
TEST_FILES = {path.name for path in (REPO / "tests").glob("test_*.py")}


def _files_with_tests(config, expression: str, select) -> set[str]:
    """The test files that ``pytest -m EXPRESSION`` selects tests of. ``select`` says the same of a
    test's markers: it reads this session's collection (before -m deselected any) when that holds
    every file, which saves collecting the whole suite again."""
    collected = config.stash.get(COLLECTED_MARKERS, {})
    if {nodeid.split("::")[0].removeprefix("tests/") for nodeid in collected} == TEST_FILES:
        return {nodeid.split("::")[0].removeprefix("tests/") for nodeid, marks in collected.items() if select(marks)}
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "-m", expression, "tests"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {line.split("::")[0].removeprefix("tests/") for line in result.stdout.splitlines() if "::" in line}


def test_the_everyday_suite_has_tests_of_every_file_and_the_compat_pass_its_files(pytestconfig):
    assert _files_with_tests(pytestconfig, "not slow", lambda marks: "slow" not in marks) == TEST_FILES - set(ONLY_SLOW)
    assert _files_with_tests(pytestconfig, "compat", lambda marks: "compat" in marks) == COMPAT_FILES
