"""One table for every shipped model: load time, latency, peak memory, training throughput.

    python bench/models.py [--repeats 5] [--train-steps 3]

Every registered task (``workbench.tasks.list_tasks()``) runs in a fresh process so its peak
memory (max RSS) is its own. Latency is the median over ``--repeats`` of the task's ``predict`` on
its first example in ``examples/`` (perfusion: the whole example series, read included, through
oSVD and the CNN's Tmax). Training throughput is images per second for a few optimiser steps of
the shipped architecture at its input size on random data (image models only). The device column
says where it ran (a GPU when there is one).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _train_throughput(bundle, steps: int) -> float:
    """Images per second for ``steps`` Adam steps of a fresh model of the bundle's spec."""
    import torch

    from workbench.models import build_model
    from workbench.training import to_memory_format
    from workbench.weights import without_pretrained

    model = build_model(without_pretrained(bundle.config.model.to_dict())).to(bundle.device).train()
    prep = bundle.config.preprocess
    size = prep.get("size", [224, 224])
    batch = 8
    x = torch.randn(batch, prep.get("channels", 3), *size, device=bundle.device)
    model = to_memory_format(model, torch.channels_last)  # as workbench.training trains
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    start = 0.0
    for step in range(steps + 1):
        if step == 1:  # the first step warms up allocators and kernels
            start = time.perf_counter()
        out = model(x)
        loss = out.float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    if bundle.device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def bench_one(task: str, repeats: int, train_steps: int) -> dict:
    """Measure one task in this process (called in a child process by ``main``)."""
    from workbench import weights
    from workbench.io import Image
    from workbench.tasks import get_task

    spec = get_task(task)
    start = time.perf_counter()
    bundle = weights.load(spec.weights_name)
    load_s = time.perf_counter() - start
    example = spec.example_paths()[0]  # the tab's first example
    loaded = spec.read(example)
    # Training throughput is measured for the image models; a series (perfusion) trains on
    # whole patients, which random tensors of the bundle's input size do not stand for.
    is_image = isinstance(loaded, Image)
    throughput = _train_throughput(bundle, train_steps) if is_image else None
    times = []
    for k in range(repeats + 1):  # the first run warms up
        start = time.perf_counter()
        # a series is read again each time, as the CLI and the tab do
        spec.predict(bundle, loaded if is_image else spec.read(example))
        if k:
            times.append(time.perf_counter() - start)
    return {
        "task": task,
        "model": bundle.config.title,
        "device": str(bundle.device),
        "load s": round(load_s, 2),
        "latency ms": round(1000 * statistics.median(times)),
        "per": "image" if is_image else "series",
        "peak MB": round(_peak_mb()),
        "train img/s": None if throughput is None else round(throughput, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(bench_one(args.one, args.repeats, args.train_steps)))
        return
    from workbench.cards import markdown_table
    from workbench.tasks import list_tasks

    rows = []
    for task in (spec.name for spec in list_tasks()):
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                task,
                "--repeats",
                str(args.repeats),
                "--train-steps",
                str(args.train_steps),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        else:
            rows.append({"task": task, "model": "failed: " + proc.stderr.strip()[-120:]})
    keys = list(next(r for r in rows if len(r) > 2))
    from workbench.training import machine_summary

    print(f"Machine: {machine_summary()}, Python {platform.python_version()}")
    print(
        markdown_table([{k: ("—" if r.get(k) is None else r.get(k)) for k in keys} for r in rows])
    )


if __name__ == "__main__":
    main()
