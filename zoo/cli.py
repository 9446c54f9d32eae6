"""The ``zoo`` command.

    zoo fit|validate|test|predict --config recipes/<name>.yaml [--trainer.max_epochs 3 ...]
    zoo list                       models, datamodules and shipped weights with their metrics
    zoo evaluate <weights-name>    re-measure shipped weights on their test split
    zoo infer <weights> IMAGES...  predict the classes of image files (zoo.infer)

The training subcommands are Lightning's own ``LightningCLI`` (:mod:`zoo.trainer_cli`), imported
only when one of them runs: ``zoo list`` and ``zoo --help`` need neither Lightning nor torch.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import warnings
from pathlib import Path

from zoo.malloc import keep_freed_memory

TRAINING_COMMANDS = ("fit", "validate", "test", "predict")
USAGE = """\
usage: zoo {fit,validate,test,predict} --config RECIPE.yaml [--section.option VALUE ...]
       zoo list
       zoo evaluate NAME [--data_dir DIR]
       zoo infer WEIGHTS IMAGES... [--output preds.csv|preds.json] [--top_k K]

commands:
  fit        train a model; with test_after_fit, test its best checkpoint (zoo fit --help lists every option)
  validate   evaluate a model or a checkpoint on the validation split
  test       evaluate a model or a checkpoint on the test split
  predict    run a model or a checkpoint on the predict split
  list       the models, DataModules and shipped weights, with their measured metrics
  evaluate   re-measure shipped weights on their test split (zoo evaluate --help)
  infer      predict the classes of image files or folders with a classifier's weights (zoo infer --help)

Recipes for every shipped weight are in the recipes/ folder of the source repository.
"""


def _list() -> int:
    import zoo
    from zoo.weights import read_manifest

    print("models:      " + ", ".join(zoo.list_models()))
    print("datamodules: " + ", ".join(zoo.list_datamodules()))
    manifest = read_manifest()
    print("\nshipped weights (metrics measured on the test split; the last line reproduces them):")
    width = max((len(name) for name in manifest), default=0)
    for name, entry in sorted(manifest.items()):
        architecture = entry["class_path"].rsplit(".", 1)[-1]
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(entry["metrics"].items()))
        print(f"  {name:<{width}}  {architecture} on {entry['dataset']}, {entry['num_params']:,} params")
        print(f"  {'':<{width}}  {metrics}")
        print(f"  {'':<{width}}  {entry['recipe']}")
    return 0


def _evaluate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="zoo evaluate", description="Re-measure shipped weights on their test split.")
    parser.add_argument("name", help="shipped weights name (see `zoo list`)")
    parser.add_argument("--data_dir", default=None, help="data root (default: $ZOO_DATA_DIR)")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--tolerance", type=float, default=0.002, help="largest accepted |measured - recorded|")
    args = parser.parse_args(argv)
    from zoo.evaluate import evaluate_pretrained  # Lightning runs the evaluation: imported once it is needed

    results = evaluate_pretrained(args.name, data_dir=args.data_dir, accelerator=args.accelerator)
    ok = True
    width = max([len("metric"), *(len(key) for key in results)])
    print(f"{'metric':<{width}} {'measured':>10} {'recorded':>10}")
    for key, pair in results.items():
        match = abs(pair["measured"] - pair["recorded"]) <= args.tolerance
        ok &= match
        print(f"{key:<{width}} {pair['measured']:>10.4f} {pair['recorded']:>10.4f}  {'ok' if match else 'MISMATCH'}")
    return 0 if ok else 1


def _infer(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="zoo infer", description="Predict the classes of image files with a "
                                     "classifier's weights (images are converted as zoo.infer describes).")
    parser.add_argument("weights", help="shipped weights (see `zoo list`) or a save_pretrained folder")
    parser.add_argument("images", nargs="+", help="image files, or folders of images (searched recursively)")
    parser.add_argument("--output", type=Path, default=None,
                        help="write every prediction to a .csv or .json file (default: a short table on stdout)")
    parser.add_argument("--top_k", type=int, default=5, help="how many of the most probable classes each row lists")
    parser.add_argument("--batch_size", type=int, default=256, help="images per forward pass")
    parser.add_argument("--skip_bad", action="store_true", help="report unreadable images and go on without them")
    args = parser.parse_args(argv)
    if args.output is not None and args.output.suffix.lower() not in (".csv", ".json"):
        parser.error(f"--output {args.output}: name a .csv or .json file")
    from zoo.infer import InferenceError, format_table, predict_files, write_rows
    from zoo.weights import WeightsError

    try:
        rows, skipped = predict_files(args.weights, args.images, top_k=args.top_k, batch_size=args.batch_size,
                                      skip_bad=args.skip_bad, progress=sys.stderr.isatty())
    except (InferenceError, WeightsError) as err:
        print(f"zoo infer: error: {err}", file=sys.stderr)
        return 2
    for path, reason in skipped:
        print(f"zoo infer: skipped {path}: {reason}", file=sys.stderr)
    if args.output is None:
        print(format_table(rows))
    else:
        write_rows(rows, args.output)
        print(f"{len(rows)} predictions written to {args.output}")
    return 0


# Lines Lightning prints for programmers on every run; a user of the zoo command has nothing to do about them.
PROGRAMMER_LOG_LINES = {
    "lightning.pytorch.utilities.rank_zero": ("💡 Tip:",),  # an advertisement for another logger
    "lightning.pytorch.trainer.connectors.checkpoint_connector": ("`weights_only` was not set",),
}
PROGRAMMER_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",  # Lightning's own use of a deprecated torch API
    # The frozen batch norms of a fine-tuning strategy (zoo.finetune): in eval mode by design.
    r"Found \d+ module\(s\) in eval mode at the start of training",
)


def quiet_programmer_messages() -> None:
    """Keep the lines meant for programmers, not users, out of the zoo command's output."""
    for name, prefixes in PROGRAMMER_LOG_LINES.items():
        logging.getLogger(name).addFilter(lambda record, prefixes=prefixes: not str(record.msg).startswith(prefixes))
    for message in PROGRAMMER_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def main(argv: list[str] | None = None) -> int:
    """Run the ``zoo`` command with ``argv`` (default: the process's arguments); returns its exit status."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()  # this process is the zoo's: no page faults for memory freed by each step (zoo.malloc)
    # In-memory datasets need no worker processes; Lightning's hint about workers does not apply.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    quiet_programmer_messages()
    if argv[:1] == ["list"]:
        return _list()
    if argv[:1] == ["evaluate"]:
        return _evaluate(argv[1:])
    if argv[:1] == ["infer"]:
        return _infer(argv[1:])
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2

    from zoo.callbacks import NonFiniteLossError
    from zoo.pretrained import PretrainedWeightsError
    from zoo.trainer_cli import UsageError, ZooCLI
    from zoo.weights import WeightsError

    try:
        # args=None when the arguments are the process's own: LightningCLI then reads sys.argv itself
        # (and has no reason to warn that arguments were passed twice).
        ZooCLI(args=None if from_command_line else argv)
    except (UsageError, PretrainedWeightsError, WeightsError) as err:
        print(f"zoo: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:  # the message says what happened and what to try; no traceback needed
        print(f"zoo: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


def console_main() -> None:
    """The ``zoo`` console script: :func:`main`, then an exit that skips Python's teardown of its modules.

    With Lightning, torch and their dependencies loaded (over 3,000 modules), the interpreter's
    teardown takes about a second, which a user would wait for after the results are printed
    (``python -m benchmarks.time_to_accuracy --phases``). Everything else of a normal exit still
    happens: other threads are joined, every exit handler runs (loggers such as Weights & Biases
    finish their runs there), logging handlers and the output streams are flushed; only files that
    were left open and never flushed are not written out.
    """
    status = [1]  # the exit status os._exit reports: 1 if an exception escapes main
    atexit.register(_exit_now, status)  # registered before anything else, so it runs after all other handlers
    try:
        status[0] = main()
    except SystemExit as exit_:  # argparse and LightningCLI exit this way (--help, bad arguments)
        code = exit_.code
        status[0] = 0 if code is None else code if isinstance(code, int) else 1
        raise
    except KeyboardInterrupt:
        status[0] = 130  # the shell's status for a process ended by Ctrl-C
        raise
    except BrokenPipeError:  # the reader went away (zoo list | head): stop quietly, as other commands do
        status[0] = 141  # the shell's status for a process ended by SIGPIPE
        return
    sys.exit(status[0])


def _exit_now(status: list[int]) -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a broken pipe: nothing more can be written
            pass
    os._exit(status[0])


if __name__ == "__main__":
    console_main()
