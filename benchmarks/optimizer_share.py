"""How much of a training step the optimizer takes: the part of issue 6's gap that is not GEMM.

Usage::

    .venv/bin/python benchmarks/optimizer_share.py            # vae, mlp, seed
    .venv/bin/python benchmarks/optimizer_share.py seed

The same trainers and batches as ``bench_steps.py`` (the classic VAE at batch 128, the GAN
presets at batch 64, real images of the embedded Fashion-MNIST subset). Times
``trainer.step`` and, inside it, the optimizers' ``step`` calls, by wrapping them; prints
the median step time and the median time of its optimizer steps.
"""
from __future__ import annotations

import statistics
import sys
import time

import nnscratch as nn
from bench_steps import MODELS, nnscratch_trainer, sample_batch


def measure(model, steps=None):
    backend = nn.Backend("numpy", "float32", seed=0)
    trainer = nnscratch_trainer(model, backend)
    x = backend.asarray(sample_batch(MODELS[model]["batch"]))
    spent = []
    for opt in trainer.optimizers.values():
        def timed(step=opt.step):
            t0 = time.perf_counter()
            step()
            spent.append(time.perf_counter() - t0)
        opt.step = timed
    steps = steps or (10 if model == "seed" else 50)
    trainer.step(x)                                   # untimed: Adam allocates its state here
    totals, optimizer = [], []
    for _ in range(steps):
        spent.clear()
        t0 = time.perf_counter()
        trainer.step(x)
        totals.append(time.perf_counter() - t0)
        optimizer.append(sum(spent))
    return statistics.median(totals), statistics.median(optimizer)


def main(argv=None):
    models = (argv if argv is not None else sys.argv[1:]) or list(MODELS)
    print("| model | step ms | optimizer ms | optimizer share |\n|---|---:|---:|---:|")
    for model in models:
        total, opt = measure(model)
        print(f"| {model} | {1e3 * total:.1f} | {1e3 * opt:.1f} | {opt / total:.0%} |")


if __name__ == "__main__":
    main()
