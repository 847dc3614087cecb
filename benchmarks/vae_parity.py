"""Parity benchmark: nnscratch's classic VAE against the same VAE in PyTorch.

Both train on the full Fashion-MNIST (60,000 training images, grey levels in [0, 1]) with
the same model (784-400-20, ReLU, PyTorch's default initialisation), the same loss (negative
ELBO, BCE from logits summed over pixels + analytic KL, mean over the batch), Adam with
lr 1e-3, batch 128, the same batch order (drawn from one seed; the last batch of 96 is
kept, as the PyTorch example's DataLoader does), on the same machine. The two frameworks
are interleaved epoch by epoch, and which one goes first alternates, so a change in the
machine's load hits both. Per epoch: training wall time, mean training loss (per image),
and the test negative ELBO on the 10,000 test images (analytic KL + one-sample
reconstruction; the same estimator on both sides). After the last epoch, the IWAE
estimate of -log p(x) with K = 50 for both.

Usage (torch is needed only here: ``.venv/bin/pip install -r benchmarks/requirements.txt``)::

    .venv/bin/python benchmarks/vae_parity.py                  # 10 epochs, ~ a few minutes
    .venv/bin/python benchmarks/vae_parity.py --epochs 1 --limit 6000   # smoke run

``--threads N`` sets both NumPy's BLAS (through ``OPENBLAS_NUM_THREADS``, read when NumPy is
imported) and torch to N threads; the default is one thread per core for both. On a machine
shared with other jobs (more runnable threads than cores) multithreaded BLAS can collapse
(threads spin-waiting for each other): compare with ``--threads 1`` there.

Writes ``benchmarks/results/vae_parity.json`` and prints a markdown table. Targets: the
final test negative ELBO within 1 nat of PyTorch's; time per epoch no worse than PyTorch's.
Timings on a shared machine are noisy: compare the medians, and read the load averages
recorded in the JSON.
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


def _set_threads_before_imports(argv):
    """``--threads N`` must reach OpenBLAS before NumPy loads it (no threadpoolctl here)."""
    argv = sys.argv[1:] if argv is None else argv
    for i, a in enumerate(argv):
        value = a.split("=", 1)[1] if a.startswith("--threads=") else \
            (argv[i + 1] if a == "--threads" and i + 1 < len(argv) else None)
        if value:
            for var in THREAD_VARS:
                os.environ[var] = value


_set_threads_before_imports(None if __name__ == "__main__" else [])

import numpy as np  # noqa: E402
import torch  # noqa: E402

import nnscratch as nn  # noqa: E402
from nnscratch import datasets  # noqa: E402
from nnscratch.models.vae import VAETrainer  # noqa: E402
from torch_ref import vae as torch_vae  # noqa: E402


def blas_info():
    """Which BLAS NumPy uses and how many threads it runs (threadpoolctl when installed)."""
    info = {"numpy": np.__version__}
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = [{k: d.get(k) for k in ("internal_api", "num_threads", "version")}
                               for d in threadpool_info()]
    except ImportError:
        try:
            cfg = np.show_config(mode="dicts")
            blas = cfg["Build Dependencies"]["blas"]
            info["blas"] = {k: blas.get(k) for k in ("name", "version", "openblas configuration")}
        except Exception as err:     # older NumPy: no dicts mode
            info["blas"] = f"unknown ({err})"
        info["threads"] = ("threadpoolctl not installed; OpenBLAS defaults to one thread per "
                           f"core ({os.cpu_count()}) unless OPENBLAS_NUM_THREADS/OMP_NUM_THREADS "
                           "is set: "
                           f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
                           f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    return info


def epoch_nnscratch(trainer, x, order):
    start = time.perf_counter()
    total = 0.0
    for idx in order:
        total += trainer.step(x[idx])["loss"] * len(idx)
    return time.perf_counter() - start, total / sum(len(i) for i in order)


def epoch_torch(trainer, x, order):
    start = time.perf_counter()
    total = 0.0
    for idx in order:
        total += trainer.step(torch.from_numpy(x[idx])) * len(idx)
    return time.perf_counter() - start, total / sum(len(i) for i in order)


def markdown(rows, final):
    lines = ["| epoch | nnscratch s | torch s | nnscratch train loss | torch train loss | "
             "nnscratch test neg-ELBO | torch test neg-ELBO |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['epoch']} | {r['nnscratch']['time_s']:.2f} | "
                     f"{r['torch']['time_s']:.2f} | "
                     f"{r['nnscratch']['train_loss']:.2f} | {r['torch']['train_loss']:.2f} | "
                     f"{r['nnscratch']['test_neg_elbo']:.2f} | {r['torch']['test_neg_elbo']:.2f} |")
    lines.append(f"| median | {final['median_time_s']['nnscratch']:.2f} | "
                 f"{final['median_time_s']['torch']:.2f} | | | | |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--latent", type=int, default=20)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iw-samples", type=int, default=50)
    ap.add_argument("--limit", type=int, default=None, help="first N training images only")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads of both NumPy's BLAS and torch (default: one per core)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "vae_parity.json"))
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads or os.cpu_count())
    torch.manual_seed(args.seed)
    train = datasets.load("fashion-mnist", "train")
    test = datasets.load("fashion-mnist", "test")
    x_train = np.ascontiguousarray(train.x[:args.limit] if args.limit else train.x)
    x_test_t = torch.from_numpy(test.x)

    ours = VAETrainer({"preset": "classic", "latent": args.latent, "lr": args.lr},
                      backend=nn.Backend("numpy", "float32", seed=args.seed))
    ref = torch_vae.Trainer(latent=args.latent, lr=args.lr)
    n_ours = ours.vae.n_params()
    n_ref = sum(p.numel() for p in ref.model.parameters())
    assert n_ours == n_ref, (n_ours, n_ref)

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "machine": platform.machine(), "blas": blas_info(),
           "loadavg_start": os.getloadavg()}
    print(f"# VAE parity: classic 784-400-{args.latent}, batch {args.batch_size}, Adam "
          f"{args.lr}, seed {args.seed}, {len(x_train)} training images, {n_ours} parameters",
          file=sys.stderr)
    print(f"# {json.dumps(env)}", file=sys.stderr)

    rng = np.random.default_rng(args.seed)
    rows = []
    for epoch in range(1, args.epochs + 1):
        order = list(datasets.batches(len(x_train), args.batch_size, rng, drop_last=False))
        runs = [("nnscratch", lambda: epoch_nnscratch(ours, x_train, order)),
                ("torch", lambda: epoch_torch(ref, x_train, order))]
        if epoch % 2 == 0:
            runs.reverse()
        row = {"epoch": epoch, "first": runs[0][0], "loadavg": os.getloadavg()[0]}
        for name, run in runs:
            seconds, loss = run()
            row[name] = {"time_s": seconds, "train_loss": loss}
        row["nnscratch"]["test_neg_elbo"] = ours.evaluate(test.x, iw_samples=1)["neg_elbo"]
        ref.model.eval()
        row["torch"]["test_neg_elbo"] = ref.evaluate(x_test_t, iw_samples=1)["neg_elbo"]
        rows.append(row)
        print(f"epoch {epoch}: " + "  ".join(
            f"{k} {row[k]['time_s']:.2f}s loss {row[k]['train_loss']:.2f} "
            f"test {row[k]['test_neg_elbo']:.2f}" for k in ("nnscratch", "torch")),
            file=sys.stderr)

    K = args.iw_samples
    final = {
        "median_time_s": {k: statistics.median(r[k]["time_s"] for r in rows)
                          for k in ("nnscratch", "torch")},
        "test_neg_elbo": {"nnscratch": rows[-1]["nnscratch"]["test_neg_elbo"],
                          "torch": rows[-1]["torch"]["test_neg_elbo"]},
        f"test_iwae_k{K}": {"nnscratch": ours.evaluate(test.x, iw_samples=K)["iwae"],
                            "torch": ref.evaluate(x_test_t, iw_samples=K)["iwae"]},
    }
    final["neg_elbo_gap_nats"] = (final["test_neg_elbo"]["nnscratch"]
                                  - final["test_neg_elbo"]["torch"])
    final["time_ratio_nnscratch_over_torch"] = (final["median_time_s"]["nnscratch"]
                                                / final["median_time_s"]["torch"])
    final["targets_met"] = {"neg_elbo_within_1_nat": abs(final["neg_elbo_gap_nats"]) <= 1.0,
                            "time_no_worse": final["time_ratio_nnscratch_over_torch"] <= 1.0}
    env["loadavg_end"] = os.getloadavg()
    result = {"config": vars(args) | {"n_train": len(x_train), "n_test": len(test.x),
                                      "params": n_ours, "init": ours.config["init"]},
              "env": env, "epochs": rows, "final": final}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(markdown(rows, final))
    print(f"\nfinal: {json.dumps(final)}")
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
