"""Inference throughput of every shipped model: images per second at batch 256, eval mode,
``torch.inference_mode``, on the CPU (and the GPU when there is one).

    python -m benchmarks.inference [--batch_size 256] [--iters 20]

Generators are timed on ``sample(batch_size)``; everything else on ``model(x)``.
"""

from __future__ import annotations

import argparse

import torch

import zoo
from benchmarks.common import machine, table, timed


def workload(model, batch_size: int, device: torch.device):
    if hasattr(model, "sample") and not model.input_shape:
        return lambda: model.sample(batch_size)
    shape = [28 if d is None else d for d in model.input_shape]
    x = torch.rand(batch_size, *shape, device=device)
    return lambda: model(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for name in zoo.list_pretrained():
        model = zoo.load_pretrained(name)
        for device in devices:
            model.to(device)
            run = workload(model, args.batch_size, device)
            with torch.inference_mode():
                for _ in range(3):
                    run()
                seconds = timed(lambda: [run() for _ in range(args.iters)])
            rows.append([name, device.type, f"{args.batch_size * args.iters / seconds:,.0f}"])
    print(f"batch {args.batch_size}; {machine()}")
    print(table(["weights", "device", "images/s"], rows))


if __name__ == "__main__":
    main()
