"""Parity benchmark: nnscratch's dense GAN against the same GAN in PyTorch.

Part 1, quality and speed of the ``mlp`` preset. Both frameworks train the same model
(generator 100-256-512-1024-784, discriminator 784-1024-512-256-1, leaky ReLU 0.2, sigmoid
output, discriminator logits, ``nn.Linear``'s initialisation; see
``benchmarks/torch_ref/gan.py``) with the same losses (BCE from logits, non-saturating
generator loss), Adam lr 2e-4 betas (0.5, 0.999), batch 64, one D step then one G step per
batch, on the full Fashion-MNIST (60,000 training images in [0, 1]; 937 batches per epoch,
the last partial batch dropped), with the same batch order (one NumPy generator seeded
with ``--seed``). Each framework draws its own initial weights and noise (nnscratch from its
backend's generator, PyTorch from ``torch.manual_seed(seed)``), so the two runs are two
samples of the same training procedure, not the same trajectory. The frameworks are
interleaved epoch by epoch, and which one goes first alternates, so a change in the
machine's load hits both. Per epoch: wall time of the training steps only, steps per
second, mean losses and D outputs, and the image metrics of :func:`nnscratch.metrics.frechet.
image_metrics` on ``--samples`` generated images (Frechet distance to the test split in the
features of nnscratch's cached Fashion-MNIST classifier: the SAME classifier for both
frameworks; classes covered). The floor ``frechet_train`` is the distance of as many real
training images.

Part 2, speed of the ``seed`` preset (the seed article's 25M-parameter networks,
generator 100-4096-2048-1024-784, discriminator 784-1024-2048-4096-1, He initialisation):
``--seed-warmup`` untimed steps each, then ``--seed-steps`` timed steps each in rounds of
``--seed-round`` steps, the frameworks alternating round by round (and which one starts
alternating too). Real batches from the training set.

Usage (torch is needed only here: ``.venv/bin/pip install -r benchmarks/requirements.txt``)::

    # 3 epochs: ~15 min on 2 cores at load 10, ~4 min at load 2
    .venv/bin/python benchmarks/gan_parity.py
    .venv/bin/python benchmarks/gan_parity.py --epochs 1 --limit 6400 --samples 2000 \
        --seed-steps 4 --seed-round 2 --no-figures      # smoke run, ~1-2 min

``--threads N`` (default 1) sets NumPy's BLAS (``OPENBLAS_NUM_THREADS``, read when NumPy is
imported) and torch to N threads.
One thread each is the default because on a machine shared with other jobs (more runnable
threads than cores) multithreaded BLAS can collapse, threads spin-waiting for each other.

Training is deterministic on the CPU with one thread (both frameworks): a second run with
the same ``--seed`` trains the same weights bit for bit; only the timings change.

Targets: nnscratch's final Frechet distance at most 10 % above PyTorch's; nnscratch's steps
per second (median over epochs, and for ``seed`` the median step) no lower than PyTorch's.
Writes ``benchmarks/results/gan_parity.json`` (``--out``), prints a markdown table, and
saves 8x8 grids of samples from fixed noise to ``docs/figures/gan_mlp_samples.png``
(nnscratch) and ``docs/figures/gan_mlp_samples_torch.png`` (PyTorch).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)                 # run from a checkout without installing
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_THREADS = 1


def _set_threads_before_imports(argv):
    """``--threads N`` must reach OpenBLAS before NumPy loads it (no threadpoolctl here)."""
    value = str(DEFAULT_THREADS)
    for i, a in enumerate(argv):
        if a.startswith("--threads="):
            value = a.split("=", 1)[1]
        elif a == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
    for var in THREAD_VARS:
        os.environ[var] = value


if __name__ == "__main__":
    _set_threads_before_imports(sys.argv[1:])

import numpy as np  # noqa: E402
import torch  # noqa: E402

import nnscratch as nn  # noqa: E402
from nnscratch import datasets  # noqa: E402
from nnscratch.metrics import frechet  # noqa: E402
from nnscratch.metrics.classifier import cache_path, get_classifier  # noqa: E402
from nnscratch.metrics.frechet import image_metrics  # noqa: E402
from nnscratch.models.gan import GANTrainer  # noqa: E402
from torch_ref import gan as torch_gan  # noqa: E402

FRAMEWORKS = ("nnscratch", "torch")
GRID_SEED = 1234            # nnscratch.plots.gan.SAMPLE_SEED: the docs' fixed noise
METRIC_SEED = 2024          # noise of the samples scored by the image metrics


def env_info():
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "threads_env": {k: os.environ.get(k) for k in THREAD_VARS}}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = {k: blas.get(k) for k in ("name", "version")}
    except Exception as err:        # older NumPy: no dicts mode
        info["blas"] = f"unknown ({err})"
    return info


def make_trainers(preset, seed):
    ours = GANTrainer({"preset": preset, "recipe": "none"},
                      backend=nn.Backend("numpy", "float32", seed=seed))
    ref = torch_gan.GANTrainer(preset, seed=seed)
    n_ours = ours.gan.G.n_params() + ours.gan.D.n_params()
    assert n_ours == ref.n_params(), (n_ours, ref.n_params())
    return {"nnscratch": ours, "torch": ref}, n_ours


def run_epoch(name, trainer, x, order):
    """Train one epoch; returns wall time of the steps and means of the step records."""
    to_input = (lambda a: a) if name == "nnscratch" else torch.from_numpy
    sums = {}
    start = time.perf_counter()
    for idx in order:
        out = trainer.step(to_input(x[idx]))
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + v
    seconds = time.perf_counter() - start
    row = {"time_s": seconds, "steps": len(order), "steps_per_s": len(order) / seconds}
    row.update({k: v / len(order) for k, v in sums.items()})
    return row


def score(trainer, n, classifier):
    """Image metrics of ``n`` samples drawn from fixed noise (``METRIC_SEED``)."""
    start = time.perf_counter()
    samples = trainer.sample(n, seed=METRIC_SEED)
    m = image_metrics(samples, "fashion-mnist", classifier=classifier, progress=False)
    m["metric_s"] = time.perf_counter() - start
    return m


def time_seed_preset(x, args):
    """Median step time of the ``seed`` preset, the frameworks alternating in rounds."""
    trainers, n_params = make_trainers("seed", args.seed)
    rng = np.random.default_rng(args.seed + 1)
    batch = lambda: x[rng.choice(len(x), 64, replace=False)]
    inputs = {"nnscratch": lambda a: a, "torch": torch.from_numpy}
    for name in FRAMEWORKS:
        for _ in range(args.seed_warmup):
            trainers[name].step(inputs[name](batch()))
    times = {name: [] for name in FRAMEWORKS}
    rounds = []
    n_rounds = -(-args.seed_steps // args.seed_round)
    for r in range(n_rounds):
        names = FRAMEWORKS if r % 2 == 0 else FRAMEWORKS[::-1]
        rounds.append({"round": r + 1, "first": names[0], "loadavg": os.getloadavg()[0]})
        for name in names:
            for _ in range(min(args.seed_round, args.seed_steps - r * args.seed_round)):
                xb = inputs[name](batch())
                start = time.perf_counter()
                trainers[name].step(xb)
                times[name].append(time.perf_counter() - start)
        print(f"seed round {r + 1}/{n_rounds}: " + "  ".join(
            f"{k} {statistics.median(times[k][-args.seed_round:]):.3f}s/step" for k in FRAMEWORKS),
            file=sys.stderr, flush=True)
    return {"params": n_params, "step_times_s": times, "rounds": rounds,
            "median_step_s": {k: statistics.median(v) for k, v in times.items()},
            "steps_per_s": {k: 1.0 / statistics.median(v) for k, v in times.items()}}


def markdown(rows, final, seed):
    lines = ["| epoch | first | load | nnscratch steps/s | torch steps/s | nnscratch FD | "
             "torch FD | nnscratch classes | torch classes | nnscratch D(x) / D(G(z)) | "
             "torch D(x) / D(G(z)) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        a, b = r["nnscratch"], r["torch"]
        lines.append(
            f"| {r['epoch']} | {r['first']} | {r['loadavg']:.1f} | {a['steps_per_s']:.2f} | "
            f"{b['steps_per_s']:.2f} | {a['frechet']:.2f} | {b['frechet']:.2f} | "
            f"{a['classes_covered']} | {b['classes_covered']} | "
            f"{a['D_real']:.2f} / {a['D_fake']:.2f} | {b['D_real']:.2f} / {b['D_fake']:.2f} |")
    sp = final["mlp_steps_per_s"]
    lines.append(f"| **median** | | | **{sp['nnscratch']:.2f}** | **{sp['torch']:.2f}** "
                 "| | | | | | |")
    lines += ["", f"Train-set floor (Frechet distance of {final['n_samples']} real training "
              f"images): {final['frechet_train']:.2f}.", ""]
    lines += ["| target | nnscratch | torch | ratio | met |", "|---|---:|---:|---:|---|"]
    fd = final["frechet"]
    lines.append("| final Frechet distance (lower is better, <= 1.10x torch) | "
                 f"{fd['nnscratch']:.2f} | {fd['torch']:.2f} | {final['frechet_ratio']:.3f} | "
                 f"{'yes' if final['targets_met']['frechet_within_10pct'] else 'NO'} |")
    lines.append(f"| mlp steps/s, median over epochs (>= torch) | {sp['nnscratch']:.2f} | "
                 f"{sp['torch']:.2f} | {final['mlp_speed_ratio']:.3f} | "
                 f"{'yes' if final['targets_met']['mlp_steps_per_s'] else 'NO'} |")
    if seed:
        ss = seed["steps_per_s"]
        lines.append(f"| seed steps/s, median of {len(seed['step_times_s']['torch'])} steps "
                     f"(>= torch) | {ss['nnscratch']:.3f} | {ss['torch']:.3f} | "
                     f"{final['seed_speed_ratio']:.3f} | "
                     f"{'yes' if final['targets_met']['seed_steps_per_s'] else 'NO'} |")
    return "\n".join(lines)


def save_grids(trainers, fig_dir):
    from nnscratch.plots.grid import save_image_grid
    os.makedirs(fig_dir, exist_ok=True)
    paths = {}
    for name, suffix in (("nnscratch", ""), ("torch", "_torch")):
        path = os.path.join(fig_dir, f"gan_mlp_samples{suffix}.png")
        title = f"{'nnscratch' if name == 'nnscratch' else 'PyTorch'} mlp GAN, fixed z"
        paths[name] = save_image_grid(trainers[name].sample(64, seed=GRID_SEED), path, nrow=8,
                                      title=title)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64, help="the mlp preset's batch")
    ap.add_argument("--samples", type=int, default=10000, help="images per Frechet distance")
    ap.add_argument("--limit", type=int, default=None, help="first N training images only")
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                    help="threads of NumPy's BLAS, nnscratch's pool and torch (default 1)")
    ap.add_argument("--seed-steps", type=int, default=20, help="timed steps of the seed preset")
    ap.add_argument("--seed-warmup", type=int, default=2)
    ap.add_argument("--seed-round", type=int, default=5, help="steps per interleaved round")
    ap.add_argument("--no-seed", action="store_true", help="skip the seed preset's timing")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--figures", default=os.path.join(ROOT, "docs", "figures"))
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "gan_parity.json"))
    args = ap.parse_args(argv)
    t_start = time.perf_counter()

    torch.set_num_threads(args.threads)
    env = env_info() | {"loadavg_start": os.getloadavg()}
    train = datasets.load("fashion-mnist", "train")
    x_train = np.ascontiguousarray(train.x[:args.limit] if args.limit else train.x)

    start = time.perf_counter()
    classifier = get_classifier("fashion-mnist", progress=False)
    # Frechet distances are comparable only between runs with the same classifier file.
    clf_info = {"arch": classifier.arch, "load_or_train_s": time.perf_counter() - start,
                "file": cache_path("fashion-mnist").name,
                "coverage_min_fraction": frechet.MIN_FRACTION,
                **{k: classifier.info.get(k) for k in ("test_accuracy", "epochs", "seed")}}

    trainers, n_params = make_trainers("mlp", args.seed)
    print(f"# GAN parity: mlp preset, {n_params} parameters, batch {args.batch_size}, "
          f"{len(x_train)} training images, {args.epochs} epochs, seed {args.seed}, "
          f"{args.threads} thread(s)", file=sys.stderr)
    print(f"# {json.dumps(env)}", file=sys.stderr)
    print(f"# classifier {json.dumps(clf_info)}", file=sys.stderr, flush=True)

    rng = np.random.default_rng(args.seed)
    rows = []
    for epoch in range(1, args.epochs + 1):
        order = list(datasets.batches(len(x_train), args.batch_size, rng, drop_last=True))
        names = FRAMEWORKS if epoch % 2 == 1 else FRAMEWORKS[::-1]
        row = {"epoch": epoch, "first": names[0], "loadavg": os.getloadavg()[0]}
        for name in names:
            row[name] = run_epoch(name, trainers[name], x_train, order)
            print(f"epoch {epoch} {name}: {row[name]['time_s']:.1f}s "
                  f"{row[name]['steps_per_s']:.2f} steps/s", file=sys.stderr, flush=True)
        for name in FRAMEWORKS:
            m = score(trainers[name], args.samples, classifier)
            row[name].update({k: m[k] for k in ("frechet", "classes_covered", "class_entropy",
                                                "class_histogram", "metric_s")})
            row["frechet_train"] = m["frechet_train"]
        row["loadavg_end"] = os.getloadavg()[0]
        rows.append(row)
        print(f"epoch {epoch}: " + "  ".join(
            f"{k} FD {row[k]['frechet']:.2f} classes {row[k]['classes_covered']}"
            for k in FRAMEWORKS) + f"  floor {row['frechet_train']:.2f}", file=sys.stderr,
            flush=True)

    seed = None if args.no_seed else time_seed_preset(x_train, args)

    last = rows[-1]
    final = {
        "n_samples": args.samples,
        "frechet": {k: last[k]["frechet"] for k in FRAMEWORKS},
        "classes_covered": {k: last[k]["classes_covered"] for k in FRAMEWORKS},
        "frechet_train": last["frechet_train"],
        "mlp_steps_per_s": {k: statistics.median(r[k]["steps_per_s"] for r in rows)
                            for k in FRAMEWORKS},
    }
    final["frechet_ratio"] = final["frechet"]["nnscratch"] / final["frechet"]["torch"]
    final["mlp_speed_ratio"] = (final["mlp_steps_per_s"]["nnscratch"]
                                / final["mlp_steps_per_s"]["torch"])
    final["targets_met"] = {"frechet_within_10pct": final["frechet_ratio"] <= 1.10,
                            "mlp_steps_per_s": final["mlp_speed_ratio"] >= 1.0}
    if seed:
        final["seed_steps_per_s"] = seed["steps_per_s"]
        final["seed_speed_ratio"] = seed["steps_per_s"]["nnscratch"] / seed["steps_per_s"]["torch"]
        final["targets_met"]["seed_steps_per_s"] = final["seed_speed_ratio"] >= 1.0

    figures = {} if args.no_figures else save_grids(trainers, args.figures)
    env["loadavg_end"] = os.getloadavg()
    env["total_s"] = time.perf_counter() - t_start
    result = {"config": {k: v for k, v in vars(args).items() if k not in ("out", "figures")}
              | {"n_train": len(x_train), "params_mlp": n_params, "init_mlp": "pytorch",
                 "init_seed": "he", "lr": 2e-4, "betas": [0.5, 0.999], "k": 1,
                 "loss": "non-saturating", "metric_noise_seed": METRIC_SEED,
                 "grid_noise_seed": GRID_SEED},
              "env": env, "classifier": clf_info, "epochs": rows, "seed_preset": seed,
              "final": final, "figures": {k: os.path.relpath(v, ROOT) for k, v in figures.items()}}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(markdown(rows, final, seed))
    print(f"\nfinal: {json.dumps(final)}")
    print(f"total {env['total_s']:.0f} s; load average start {env['loadavg_start']}, "
          f"end {env['loadavg_end']}; written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
