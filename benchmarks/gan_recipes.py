"""Ablation of the GAN stabilisers, and the 20-epoch targets of the ``seed`` and ``mlp``
presets, on the full Fashion-MNIST.

Each variant is one real run of the command a user types (``nnscratch train gan``, then
``nnscratch eval``), so the numbers are those of the CLI: Frechet distance of 10,000
samples (``--samples``) to the test split in the features of nnscratch's cached
classifier, classes covered at the 5% threshold, and, per epoch, the training loss of D
and the mean D(G(z)) ("D_fake"), read from the run's ``log.jsonl``. Samples come from the
moving average of G when the variant has one (what ``sample`` and ``eval`` use).

Variants (``--variants``, comma-separated, see :data:`VARIANTS`): ``none`` (the bare
GAN, lr 2e-4 for both networks), ``stable`` (the default recipe: spectral norm in D, batch
norm in G, EMA 0.999 of G, two time scales lr_D 4e-4 and lr_G 1e-4), ``sn+bn+ema`` (the
same with one learning rate, 2e-4), and ``sn+bn+ema`` with each of its three pieces taken
away (``sn+bn``, ``sn+ema``, ``bn+ema``).

Usage::

    .venv/bin/python benchmarks/gan_recipes.py --preset mlp --epochs 5       # the ablation
    .venv/bin/python benchmarks/gan_recipes.py --preset seed --epochs 20 \
        --variants stable,sn+bn+ema --backend cupy                           # the targets

``--plot DIR`` draws the stored curves (D's loss and D_fake per epoch, every variant) into
``DIR/gan_recipes_<entry>.png`` without training anything.

Settings: seed 0, batch 64, Adam betas (0.5, 0.999), one D step per G step. Appends
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

#: Each variant spelled out in full (explicit learning rates), so that a change of the
#: recipes' defaults cannot change what a stored result means.
EQUAL_LR = ["--lr-d", "2e-4", "--lr-g", "2e-4"]
VARIANTS = {
    "none": ["--recipe", "none"],
    "stable": ["--recipe", "stable", "--lr-d", "4e-4", "--lr-g", "1e-4"],
    "sn+bn+ema": ["--recipe", "stable", *EQUAL_LR],
    "sn+bn": ["--recipe", "stable", *EQUAL_LR, "--ema", "0"],
    "sn+ema": ["--recipe", "stable", *EQUAL_LR, "--g-norm", "none"],
    "bn+ema": ["--recipe", "stable", *EQUAL_LR, "--no-d-spectral"],
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


def plot_curves(results, key, path):
    """D's training loss and mean D(G(z)) per epoch of every variant of ``results[key]``."""
    sys.path.insert(0, ROOT)
    from nnscratch.plots.grid import pyplot
    plt = pyplot()
    entry = results[key]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, run in entry["runs"].items():
        c = run["curves"]
        epochs = range(1, len(c["train_loss_D"]) + 1)
        axes[0].plot(epochs, c["train_loss_D"], marker=".", label=name)
        axes[1].plot(epochs, c["train_D_fake"], marker=".", label=name)
    axes[0].axhline(2 * 0.6931, color="grey", lw=0.8, ls="--")        # 2 log 2: D at chance
    axes[1].axhline(0.5, color="grey", lw=0.8, ls="--")
    axes[0].set(xlabel="epoch", ylabel="train loss_D", title="D's loss (dashed: 2 log 2)")
    axes[1].set(xlabel="epoch", ylabel="mean D(G(z))", title="D_fake (dashed: 1/2)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{entry['preset']} preset, {entry['epochs']} epochs, full Fashion-MNIST")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


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
    p.add_argument("--plot", metavar="DIR", default=None,
                   help="only draw the curves of every stored entry into DIR (no training)")
    args = p.parse_args(argv)
    if args.plot:
        with open(args.results) as f:
            results = json.load(f)
        for key in results:
            print(plot_curves(results, key, os.path.join(args.plot, f"gan_recipes_{key}.png")))
        return
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
