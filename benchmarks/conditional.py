"""The class-conditional VAE and GAN at 20 epochs on the full Fashion-MNIST: class
consistency (eq. cond-4) next to the Frechet distance.

Each model is one real run of the commands a user types (``nnscratch train vae|gan
--conditional``, then ``nnscratch eval``), so the numbers are those of the CLI: ``eval``
draws ``--samples`` images, every class equally often, and reports the share the project's
cached classifier assigns to the class asked for (per class and overall), the Frechet
distance of those samples to the test split and the classes covered.

Models (``--models``, comma-separated, see :data:`MODELS`): ``gan`` (mlp preset, the stable
recipe, its defaults spelled out: lr_D 4e-4, lr_G 1e-4, as ``gan_recipes.py``'s ``stable``
variant, so the Frechet distance compares with that unconditional run) and ``vae``
(classic preset, grey levels, ELBO); ``vae_k2`` the same with a 2-D latent.

Usage::

    .venv/bin/python benchmarks/conditional.py --epochs 20 --models gan,vae

``--figures DIR`` draws, from the stored checkpoints, ``DIR/conditional_<model>_grid.png``
(a row per class, the same eight z in every row) and ``DIR/conditional_<model>_interp.png``
(at a fixed z, the label moved from one class to another through soft labels
``(1 - t) e_a + t e_b``), without training anything.

``--temperatures 1,0.8,0.6`` adds, to each stored run, the class consistency of samples
drawn with ``z ~ N(0, t^2 I)`` (3,000 per temperature, every class equally often), which
tells a generator that misses its classes from one whose prior reaches regions the
decoder never learned (the VAE's "holes"), without training anything.

Settings: seed 0; batch 64 (GAN) and 128 (VAE). Writes (or updates) ``--results``
(default ``benchmarks/results/conditional.json``), keyed by model and epochs, and prints a
markdown table. ``--reference`` adds the classifier's accuracy on the test split: the class
consistency of real images.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gan_recipes import ROOT, nnscratch, parse_eval  # noqa: E402

MODELS = {
    "gan": ["gan", "--preset", "mlp", "--recipe", "stable", "--lr-d", "4e-4", "--lr-g", "1e-4"],
    "vae": ["vae", "--preset", "classic"],
    "vae_k2": ["vae", "--preset", "classic", "--latent", "2"],
}


def run_model(args, name):
    out = os.path.join(args.runs, f"{name}_e{args.epochs}")
    train = ["train", *MODELS[name], "--conditional", "--dataset", args.dataset,
             "--epochs", str(args.epochs), "--seed", str(args.seed), "--out", out, "--quiet"]
    if args.limit:
        train += ["--limit", str(args.limit)]
    if args.overwrite:
        train += ["--overwrite"]
    checkpoint = os.path.join(out, "checkpoint.npz")
    start = time.perf_counter()
    if args.resume and os.path.exists(checkpoint):
        nnscratch("train", MODELS[name][0], "--resume", checkpoint, "--quiet")
    else:
        nnscratch(*train)
    seconds = time.perf_counter() - start
    metrics = parse_eval(nnscratch("eval", "--checkpoint", checkpoint,
                                   "--samples", str(args.samples)))
    per_class = [float(v) for v in str(metrics["class_consistency_per_class"]).split()]
    return {"model": name, "options": [*MODELS[name], "--conditional"],
            "seconds": round(seconds, 1), "class_consistency": metrics["class_consistency"],
            "class_consistency_per_class": per_class, "frechet": metrics.get("frechet"),
            "frechet_train": metrics.get("frechet_train"),
            "classes": metrics.get("classes_covered"),
            "test": {k: v for k, v in metrics.items() if k in ("neg_elbo", "iwae", "D_real",
                                                                 "D_fake")}}


def reference_accuracy(dataset):
    """The classifier's per-class accuracy on the test split: real images' consistency."""
    sys.path.insert(0, ROOT)
    import numpy as np

    from nnscratch import datasets
    from nnscratch.metrics.classifier import get_classifier
    from nnscratch.metrics.frechet import class_consistency
    test = datasets.load(dataset, "test")
    y_hat = get_classifier(dataset).predict(test.x)
    out = class_consistency(np.asarray(y_hat), test.labels)
    return {"class_consistency": out["class_consistency"],
            "class_consistency_per_class": out["class_consistency_per_class"]}


def table(rows, names):
    lines = ["| model | class consistency | " + " | ".join(names) + " | Frechet distance | "
             "minutes |", "|---|---:|" + "---:|" * len(names) + "---:|---:|"]
    for r in rows:
        cells = " | ".join(f"{v:.2f}" for v in r["class_consistency_per_class"])
        fd = "" if r.get("frechet") is None else f"{r['frechet']:.2f}"
        minutes = "" if r.get("seconds") is None else f"{r['seconds'] / 60:.1f}"
        lines.append(f"| {r['model']} | **{r['class_consistency']:.3f}** | {cells} | {fd} | "
                     f"{minutes} |")
    return "\n".join(lines)


def store(path, key, entry):
    """Put ``entry`` under ``key`` in the JSON file ``path``, read just before (two runs of
    this script may share the file)."""
    results = {}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    results[key] = entry
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


#: class pairs of the interpolation figure (T-shirt -> dress, sneaker -> ankle boot, ...)
PAIRS = [(0, 3), (7, 9), (5, 7), (2, 4), (1, 3), (8, 6)]


def soft_generate(trainer, z, y):
    """Images for host noise ``z`` ``(n, latent)`` and host soft labels ``y`` ``(n, C)``."""
    from nnscratch.backend import to_numpy
    b = trainer.backend
    if trainer.kind == "vae":
        return to_numpy(trainer.vae.decode(b.asarray(z), b.asarray(y)))
    from nnscratch.models.gan import evaluating
    with evaluating(trainer.generator()) as G:
        return to_numpy(trainer.gan.generate(b.asarray(z), b.asarray(y), G))


def temperature_sweep(args, names):
    """Class consistency of samples with ``z ~ N(0, t^2 I)`` for each temperature ``t``."""
    sys.path.insert(0, ROOT)
    import numpy as np

    from nnscratch.metrics.classifier import get_classifier
    from nnscratch.metrics.frechet import class_consistency
    from nnscratch.training.checkpoint import load_checkpoint
    classifier = get_classifier(args.dataset)
    results = {}
    if os.path.exists(args.results):
        with open(args.results) as f:
            results = json.load(f)
    for name in names:
        key = f"{name}_e{args.epochs}"
        trainer, _ = load_checkpoint(os.path.join(args.runs, key, "checkpoint.npz"))
        latent = trainer.vae.latent if trainer.kind == "vae" else trainer.gan.latent
        labels = np.arange(3000) % trainer.n_classes
        noise = np.random.default_rng(args.seed).standard_normal((3000, latent))
        sweep = []
        for t in args.temperatures:
            z = (t * noise).astype(np.float32)
            x = trainer.decode(z, labels) if trainer.kind == "vae" else \
                trainer.generate(z, labels=labels)
            cc = class_consistency(classifier.predict(x), labels)["class_consistency"]
            sweep.append({"temperature": t, "class_consistency": round(cc, 4)})
            print(f"{key}: t = {t}: class consistency {cc:.3f}", file=sys.stderr)
        store(args.results, key, {**results[key], "temperature_sweep": sweep})


def sweep_table(results):
    """Class consistency against the temperature of z, a column per stored run."""
    runs = [k for k in ("gan_e20", "vae_e20", "vae_k2_e20")
            if "temperature_sweep" in results.get(k, {})]
    temps = [p["temperature"] for p in results[runs[0]]["temperature_sweep"]] if runs else []
    lines = ["| temperature of z | " + " | ".join(k[:-4] for k in runs) + " |",
             "|---:|" + "---:|" * len(runs)]
    for i, t in enumerate(temps):
        cells = " | ".join(f"{results[k]['temperature_sweep'][i]['class_consistency']:.3f}"
                           for k in runs)
        lines.append(f"| {t:g} | {cells} |")
    return "\n".join(lines)


def draw_figures(args, names):
    sys.path.insert(0, ROOT)
    import numpy as np

    from nnscratch.datasets import REGISTRY
    from nnscratch.plots.grid import save_class_grid
    from nnscratch.training.checkpoint import load_checkpoint
    class_names = REGISTRY["fashion-mnist"].class_names
    os.makedirs(args.figures, exist_ok=True)
    for name in names:
        trainer, state = load_checkpoint(os.path.join(args.runs, f"{name}_e{args.epochs}",
                                                      "checkpoint.npz"))
        C = trainer.n_classes
        latent = trainer.vae.latent if trainer.kind == "vae" else trainer.gan.latent
        z = np.random.default_rng(7).standard_normal((8, latent)).astype(np.float32)
        eye = np.eye(C, dtype=np.float32)
        grid = soft_generate(trainer, np.tile(z, (C, 1)), np.repeat(eye, 8, axis=0))
        print(save_class_grid(grid, os.path.join(args.figures, f"conditional_{name}_grid.png"),
                              8, class_names, f"conditional {name}, epoch {state['epoch']}: "
                              "the same 8 z in every row"))
        t = np.linspace(0, 1, 8, dtype=np.float32)[:, None]
        rows = [soft_generate(trainer, np.repeat(z[r:r + 1], 8, axis=0),
                              (1 - t) * eye[a] + t * eye[b]) for r, (a, b) in enumerate(PAIRS)]
        labels = [f"{class_names[a]} > {class_names[b]}" for a, b in PAIRS]
        print(save_class_grid(np.concatenate(rows), os.path.join(
            args.figures, f"conditional_{name}_interp.png"), 8, labels,
            f"conditional {name}: one z per row, the label from one class to another"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--models", default="gan,vae")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "conditional"))
    p.add_argument("--overwrite", action="store_true", help="replace earlier runs' outputs")
    p.add_argument("--resume", action="store_true",
                   help="continue a run from its checkpoint where there is one")
    p.add_argument("--reference", action="store_true",
                   help="also store the classifier's accuracy on the test split")
    p.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results",
                                                     "conditional.json"))
    p.add_argument("--figures", metavar="DIR", default=None,
                   help="only draw the figures of the stored runs into DIR")
    p.add_argument("--temperatures", default=None,
                   type=lambda s: [float(v) for v in s.split(",") if v],
                   help="only add the class consistency at these temperatures of z")
    args = p.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    if args.figures:
        return draw_figures(args, names)
    if args.temperatures:
        return temperature_sweep(args, names)
    if args.reference:
        store(args.results, "reference",
              {"model": "real test images", **reference_accuracy(args.dataset)})
    for name in names:
        print(f"== conditional {name} ({args.epochs} epochs)", file=sys.stderr, flush=True)
        r = run_model(args, name)
        r.update(epochs=args.epochs, seed=args.seed, limit=args.limit,
                 date=datetime.date.today().isoformat(),
                 machine=f"{platform.machine()}, {os.cpu_count()} cores, backend numpy")
        store(args.results, f"{name}_e{args.epochs}" + (f"_limit{args.limit}" if args.limit
                                                         else ""), r)
    with open(args.results) as f:
        results = json.load(f)
    sys.path.insert(0, ROOT)
    from nnscratch.datasets import REGISTRY
    print(table(list(results.values()), REGISTRY["fashion-mnist"].class_names))


if __name__ == "__main__":
    main()
