"""Ablation of the GAN stabilisers, and the 20-epoch targets of the ``seed`` and ``mlp``
presets, on the full Fashion-MNIST.

Each variant is one real run of the command a user types (``nnscratch train gan``, then
``nnscratch eval``), so the numbers are those of the CLI: Frechet distance of 10,000
samples (``--samples``) to the test split in the features of nnscratch's cached
classifier, classes covered at the 5% threshold, and, per epoch, the training loss of D
and the mean D(G(z)) ("D_fake"), read from the run's ``log.jsonl``. Samples come from the
moving average of G when the variant has one (what ``sample`` and ``eval`` use).

Variants (``--variants``, comma-separated, see :data:`VARIANTS`): ``none`` (the bare
GAN), ``stable`` (the default recipe: spectral norm in D, batch norm in G, EMA 0.999 of
G), each of the three taken away from ``stable`` (``-sn``, ``-bn``, ``-ema``), and
``ttur`` (``stable`` with lr_D 4e-4, lr_G 1e-4).

Usage::

    .venv/bin/python benchmarks/gan_recipes.py --preset mlp --epochs 5       # the ablation
    .venv/bin/python benchmarks/gan_recipes.py --preset seed --epochs 20 --variants stable \
        --backend cupy                                                        # the target

Settings: seed 0, batch 64, Adam (0.5, 0.999) lr 2e-4, one D step per G step. Appends
to (or creates) ``benchmarks/results/gan_recipes.json`` (``--results``), keyed by preset,
epochs and variant, and prints a markdown table.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VARIANTS = {
    "none": ["--recipe", "none"],
    "stable": ["--recipe", "stable"],
    "-sn": ["--recipe", "stable", "--no-d-spectral"],
    "-bn": ["--recipe", "stable", "--g-norm", "none"],
    "-ema": ["--recipe", "stable", "--ema", "0"],
    "ttur": ["--recipe", "stable", "--lr-d", "4e-4", "--lr-g", "1e-4"],
}


def nnscratch(*args, env=None):
    """Run the CLI from this checkout; return its stdout (stderr goes to ours)."""
    cmd = [sys.executable, "-m", "nnscratch", *args]
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           **(env or {})}
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout


def parse_eval(text):
    """The ``key value`` lines of ``nnscratch eval``."""
    out = {}
    for line in text.splitlines()[1:]:
        key, _, value = line.strip().partition(" ")
        value = value.strip()
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value
    return out


def run_variant(args, name):
    out = os.path.join(args.runs, f"{args.preset}_e{args.epochs}_{name}")
    train = ["train", "gan", "--preset", args.preset, "--dataset", args.dataset,
             "--epochs", str(args.epochs), "--seed", str(args.seed), "--out", out,
             "--quiet", *VARIANTS[name]]
    if args.backend:
        train += ["--backend", args.backend]
    if args.limit:
        train += ["--limit", str(args.limit)]
    if args.overwrite:
        train += ["--overwrite"]
    start = time.perf_counter()
    nnscratch(*train)
    seconds = time.perf_counter() - start
    ev = ["eval", "--checkpoint", os.path.join(out, "checkpoint.npz"),
          "--samples", str(args.samples)]
    if args.backend:
        ev += ["--backend", args.backend]
    metrics = parse_eval(nnscratch(*ev))
    with open(os.path.join(out, "log.jsonl")) as f:
        log = [json.loads(line) for line in f if line.strip()]
    curves = {key: [rec.get(key) for rec in log]
              for key in ("train_loss_D", "train_D_fake", "train_D_real", "train_loss_G")}
    return {"variant": name, "options": VARIANTS[name], "seconds": round(seconds, 1),
            "frechet": metrics.get("frechet"), "classes": metrics.get("classes_covered"),
            "class_histogram": metrics.get("class_histogram"), "curves": curves}


def table(rows):
    lines = ["| variant | Frechet distance | classes (of 10) | loss_D, last epoch | "
             "D_fake, last epoch | minutes |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        c = r["curves"]
        lines.append(f"| {r['variant']} | {r['frechet']:.2f} | {int(r['classes'])} | "
                     f"{c['train_loss_D'][-1]:.3f} | {c['train_D_fake'][-1]:.3f} | "
                     f"{r['seconds'] / 60:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=["mlp", "seed"], default="mlp")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default=None)
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "gan_recipes"))
    p.add_argument("--overwrite", action="store_true", help="replace earlier runs' outputs")
    p.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results",
                                                     "gan_recipes.json"))
    args = p.parse_args(argv)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    rows = []
    for name in names:
        print(f"== {args.preset} {name} ({args.epochs} epochs)", file=sys.stderr, flush=True)
        rows.append(run_variant(args, name))
        print(table(rows[-1:]), file=sys.stderr, flush=True)
    results = {}
    if os.path.exists(args.results):
        with open(args.results) as f:
            results = json.load(f)
    key = f"{args.preset}_e{args.epochs}" + (f"_limit{args.limit}" if args.limit else "")
    entry = results.setdefault(key, {"preset": args.preset, "epochs": args.epochs,
                                     "limit": args.limit, "seed": args.seed, "runs": {}})
    for r in rows:
        r["date"] = datetime.date.today().isoformat()
        r["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, backend " \
                       f"{args.backend or 'numpy'}"
        entry["runs"][r["variant"]] = r
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    with open(args.results, "w") as f:
        json.dump(results, f, indent=1)
    print(table(rows))


if __name__ == "__main__":
    main()
