"""Mode coverage of GAN and PacGAN on the 2-D ring and grid mixtures (Lin et al., 2018, Table 1).

Usage::

    python benchmarks/toy2d.py                       # both mixtures, PacGAN and GAN, 10 seeds
    python benchmarks/toy2d.py --mixtures ring --seeds 3 --packs 2
    python benchmarks/toy2d.py --figures docs/figures    # also the figures of seed 0
    python benchmarks/toy2d.py --mixtures grid --packs 4 --steps 96000   # meets the grid target

Each run trains from scratch with the tight loop of :func:`nnscratch.models.toy2d.train` (fresh
samples of the mixture at every step) and measures eq. (toy-1) on 2,500 samples: modes
captured and the fraction of high-quality samples. Prints a markdown table (mean +- standard
error over the seeds, seconds per run) and writes the per-seed numbers to
``benchmarks/results/toy2d.json``.

Runs are single-threaded (``OPENBLAS_NUM_THREADS=1`` and its OpenMP/MKL peers, set below
before NumPy is imported): the networks are small, and threads only add overhead.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from nnscratch.models import toy2d  # noqa: E402

#: The settings: the ``toy`` preset of :mod:`nnscratch.models.gan` (ReLU MLPs, G 2-64-64-64-2,
#: D 2m-128-128-128-1, PyTorch initialisation, Adam lr 1e-3, betas (0.5, 0.999), k = 1,
#: non-saturating loss), batch 256, the learning rate constant for the first half of the run
#: and then decayed geometrically to ``lr_final``; the grid is trained in units of
#: ``scale * x`` (modes in [-1, 1]^2). ``pack`` is the PacGAN's m (the benchmark also runs
#: pack 1, the plain GAN, with everything else the same). A wider generator for the grid,
#: 2-128-128-128-2, was tried: over 10 seeds 24.1 modes and 73% high quality, against 24.8
#: and 82% with 64 units.
SETTINGS = {
    "ring": {"steps": 40000, "batch": 256, "lr_final": 1e-5, "decay_start": 0.5, "scale": 1.0,
             "pack": 2, "config": {"preset": "toy"}},
    "grid": {"steps": 48000, "batch": 256, "lr_final": 1e-5, "decay_start": 0.5, "scale": 0.25,
             "pack": 4, "config": {"preset": "toy"}},
}

#: PacGAN, Table 1 (10 trials each): modes captured and high-quality samples (%).
#: (GAN and PacGAN4: our pack-1 rows compare with the first, our pack-m rows with the second.)
ANCHORS = {("ring", 1): (6.3, 98.2), ("ring", 4): (7.8, 95.9),
           ("grid", 1): (17.3, 94.8), ("grid", 4): (24.8, 93.6)}


def mean_se(values):
    """Mean and standard error of the mean (sample standard deviation / sqrt(n))."""
    v = np.asarray(values, dtype=np.float64)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se


def run(name, pack, seeds, snapshots=(), verbose=True, extra=None):
    """Train ``len(seeds)`` GANs on mixture ``name`` with pack ``pack``; per-seed results.
    ``extra``: config keys added to the setting's (e.g. the stabilisers of the GAN)."""
    s = SETTINGS[name]
    rows, logs = [], {}
    for seed in seeds:
        trainer, log = toy2d.train(name, s["steps"], {**s["config"], **(extra or {}),
                                                      "pack": pack},
                                   batch=s["batch"], seed=seed, lr_final=s["lr_final"],
                                   decay_start=s["decay_start"], scale=s["scale"],
                                   snapshots=snapshots if seed == seeds[0] else ())
        m = log["metrics"]
        rows.append({"seed": seed, "modes": m["modes"], "high_quality": m["high_quality"],
                     "seconds": round(log["seconds"], 2), "counts": m["counts"]})
        if seed == seeds[0]:
            logs = {"trainer": trainer, "log": log}
        if verbose:
            print(f"  {name} pack {pack} seed {seed}: {m['modes']} modes, "
                  f"{100 * m['high_quality']:.1f}% high quality, {log['seconds']:.0f} s",
                  file=sys.stderr, flush=True)
    return rows, logs


def summarize(name, pack, rows):
    modes, modes_se = mean_se([r["modes"] for r in rows])
    hq, hq_se = mean_se([100 * r["high_quality"] for r in rows])
    sec, sec_se = mean_se([r["seconds"] for r in rows])
    return {"mixture": name, "pack": pack, "n_seeds": len(rows), "modes_mean": modes,
            "modes_se": modes_se, "hq_mean": hq, "hq_se": hq_se, "seconds_mean": sec,
            "seconds_max": max(r["seconds"] for r in rows), "runs": rows,
            "anchor_pacgan_table1": ANCHORS.get((name, 1 if pack == 1 else 4))}


def table(summaries):
    lines = ["| mixture | model | modes (of K) | high quality (%) | s / run | PacGAN Table 1 |",
             "|---|---|---|---|---|---|"]
    for r in summaries:
        K = len(toy2d.mixture(r["mixture"])[0])
        model = "GAN" if r["pack"] == 1 else f"PacGAN{r['pack']}"
        anchor = ANCHORS.get((r["mixture"], 1 if r["pack"] == 1 else 4))
        anchor = (f"{'GAN' if r['pack'] == 1 else 'PacGAN4'}: {anchor[0]}, {anchor[1]}%"
                  if anchor else "-")
        lines.append(f"| {r['mixture']} | {model} | {r['modes_mean']:.1f} ± {r['modes_se']:.1f} "
                     f"(of {K}) | {r['hq_mean']:.1f} ± {r['hq_se']:.1f} | "
                     f"{r['seconds_mean']:.0f} (max {r['seconds_max']:.0f}) | {anchor} |")
    return "\n".join(lines)


def figures(name, logs_by_pack, out_dir):
    """Samples over training, one row per pack; D = sigma(s) over the plane for the first."""
    from nnscratch.plots.toy2d import discriminator_map, samples_over_training
    os.makedirs(out_dir, exist_ok=True)
    rows = {("GAN" if p == 1 else f"PacGAN{p}"): v["log"]["snapshots"]
            for p, v in logs_by_pack.items()}
    paths = [os.path.join(out_dir, f"toy2d_{name}.png"),
             os.path.join(out_dir, f"toy2d_{name}_discriminator.png")]
    samples_over_training(rows, name, paths[0], panel_size=1.5, dpi=80)
    pack, first = next(iter(logs_by_pack.items()))
    discriminator_map(first["trainer"], name, first["log"]["samples"], paths[1],
                      resolution=150, scale=SETTINGS[name]["scale"], dpi=80,
                      title=f"{'GAN' if pack == 1 else f'PacGAN{pack}'} on {name}: "
                            r"$D(x) = \sigma(s(x))$ and samples")
    return paths


def combine(paths, out):
    """Merge result files: runs of the same mixture and pack (e.g. seeds 0-4 and 5-9, run in
    parallel) are pooled and summarised again."""
    results, runs = [], {}
    for path in paths:
        with open(path) as f:
            results.append(json.load(f))
        for s in results[-1]["summaries"]:
            runs.setdefault((s["mixture"], s["pack"]), []).extend(s["runs"])
    summaries = [summarize(name, pack, sorted(rows, key=lambda r: r["seed"]))
                 for (name, pack), rows in runs.items()]
    merged = {**results[0], "summaries": summaries,
              "total_seconds": sum(r["total_seconds"] for r in results), "combined_from": paths}
    print(table(merged["summaries"]))
    with open(out, "w") as f:
        json.dump(merged, f, indent=1)
    print(f"\nwritten: {out}", file=sys.stderr)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mixtures", nargs="+", default=["ring", "grid"], choices=list(SETTINGS))
    parser.add_argument("--packs", nargs="+", type=int, default=None,
                        help="default: the setting's pack, then 1 (the plain GAN)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1 (to split a run)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "toy2d.json"))
    parser.add_argument("--figures", default=None, help="directory for the figures of seed 0")
    parser.add_argument("--config", type=json.loads, default={}, metavar="JSON",
                        help='GAN config keys added to the settings, e.g. \'{"ema": 0.999, '
                             '"D_spectral": true}\' (recorded in the results)')
    # to search for better settings without editing SETTINGS (recorded in the results)
    for flag, kind in (("--steps", int), ("--batch", int), ("--lr-final", float),
                       ("--decay-start", float)):
        parser.add_argument(flag, type=kind, default=None,
                            help=f"override the setting's {flag[2:].replace('-', '_')} "
                                 "for the mixtures run")
    parser.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                        help="merge earlier result files (e.g. one per mixture, run in "
                             "parallel) into --out and print their table; trains nothing")
    args = parser.parse_args(argv)
    if args.combine:
        return combine(args.combine, args.out)

    for name in args.mixtures:
        for key in ("steps", "batch", "lr_final", "decay_start"):
            if getattr(args, key) is not None:
                SETTINGS[name][key] = getattr(args, key)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    summaries, start = [], time.perf_counter()
    for name in args.mixtures:
        steps = SETTINGS[name]["steps"]
        snaps = sorted({0, steps // 8, steps // 4, steps // 2, steps}) if args.figures else ()
        logs_by_pack = {}
        for pack in args.packs or [SETTINGS[name]["pack"], 1]:
            rows, logs = run(name, pack, seeds, snaps, extra=args.config)
            summaries.append(summarize(name, pack, rows))
            logs_by_pack[pack] = logs
        if args.figures:
            print("  figures:", ", ".join(figures(name, logs_by_pack, args.figures)),
                  file=sys.stderr)
    print(table(summaries))
    result = {"benchmark": "toy2d mode coverage (PacGAN Table 1 protocol)",
              "metric": "eq. (toy-1): 2500 samples; high quality = nearest mode within 3 std; "
                        "mode captured = nearest mode of >= 1 high-quality sample",
              "settings": SETTINGS, "config_extra": args.config, "summaries": summaries,
              "machine": {"python": platform.python_version(), "numpy": np.__version__,
                          "cpu": platform.processor() or platform.machine(),
                          "cores": os.cpu_count(),
                          "threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                          "load_average_at_end": os.getloadavg()},
              "total_seconds": round(time.perf_counter() - start, 1)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nwritten: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
