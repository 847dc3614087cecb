"""The ``nnscratch`` command: train, sample, eval.

    nnscratch train vae [--preset classic|seed] [--latent N] [--epochs N] ... [--out DIR]
    nnscratch train gan [--preset seed|mlp] [--pack M] [--epochs N] ... [--out DIR]
    nnscratch sample --checkpoint CKPT --n N --out FILE.npy
    nnscratch eval --checkpoint CKPT

Bad arguments and known failures end with one line ``nnscratch: error: ...`` and exit
status 2; a diverged run exits with 1; Ctrl-C saves a checkpoint and exits with 130.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 1, 130


class UsageError(Exception):
    """A problem the user can fix from the command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text):
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _add_common_train(p, presets, default_preset, default_batch):
    data = p.add_mutually_exclusive_group()
    data.add_argument("--dataset", default=None,
                      help="mnist, fashion-mnist, kmnist or fashion-mnist-mini (embedded, the default)")
    data.add_argument("--data-dir", default=None, help="a directory holding the IDX files")
    p.add_argument("--preset", choices=presets, default=default_preset)
    p.add_argument("--latent", type=_positive_int, default=None, help="dimension of z")
    p.add_argument("--epochs", type=_non_negative_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=default_batch)
    p.add_argument("--lr", type=_positive_float, default=None, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                   help="array backend (default: $NNSCRATCH_BACKEND or numpy)")
    p.add_argument("--out", default=None, help="output directory (default runs/<model>)")
    p.add_argument("--resume", metavar="CKPT", default=None,
                   help="continue from a checkpoint.npz (same model, same data order)")
    p.add_argument("--limit", type=_positive_int, default=None,
                   help="use only the first N training images (quick runs)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser():
    parser = _Parser(prog="nnscratch", description="GANs and VAEs from scratch in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser("train", help="train a model")
    models = train.add_subparsers(dest="model", required=True, parser_class=_Parser)
    vae = models.add_parser("vae", help="variational autoencoder")
    _add_common_train(vae, ["classic", "seed"], "classic", 128)
    vae.add_argument("--binarize", action="store_true", help="dynamic binarisation of each batch")
    gan = models.add_parser("gan", help="generative adversarial network")
    _add_common_train(gan, ["mlp", "seed"], "mlp", 64)
    gan.add_argument("--pack", type=_positive_int, default=None, help="PacGAN packing degree m")
    gan.add_argument("--k", type=_positive_int, default=None, help="D steps per G step")

    sample = sub.add_parser("sample", help="export generated images as (N, 784) in [0, 1]")
    sample.add_argument("--checkpoint", required=True)
    sample.add_argument("--n", type=_positive_int, default=64)
    sample.add_argument("--out", required=True, help="FILE.npy (a FILE.png grid is written too)")
    sample.add_argument("--seed", type=int, default=0)

    ev = sub.add_parser("eval", help="evaluate a checkpoint on the test split")
    ev.add_argument("--checkpoint", required=True)
    data = ev.add_mutually_exclusive_group()
    data.add_argument("--dataset", default=None, help="default: the one the model was trained on")
    data.add_argument("--data-dir", default=None)
    ev.add_argument("--limit", type=_positive_int, default=None, help="first N test images only")
    ev.add_argument("--samples", type=_positive_int, default=10000,
                    help="generated images for the Frechet distance and class coverage")
    ev.add_argument("--no-image-metrics", action="store_true",
                    help="skip the classifier-based metrics (they train a classifier once)")
    return parser


def _backend(name, seed):
    from .backend import Backend
    return Backend(name or os.environ.get("NNSCRATCH_BACKEND", "numpy"), "float32", seed)


def _load_data(dataset, data_dir, split, limit=None):
    from . import datasets
    if dataset is not None and dataset not in datasets.names():
        raise UsageError(f"unknown dataset {dataset!r}; choose one of {', '.join(datasets.names())}")
    name = dataset or ("mnist" if data_dir else "fashion-mnist-mini")
    data = datasets.load(name, split, data_dir=data_dir)
    if limit:
        data.x, data.labels = data.x[:limit], data.labels[:limit]
    return data


def _train(args):
    from .checkpoint import load_checkpoint
    from .loop import fit
    from .trainer import Trainer
    import importlib
    importlib.import_module(f"nnscratch.{args.model}")
    out = args.out or os.path.join("runs", args.model)
    if args.resume:
        trainer, state = load_checkpoint(args.resume, backend=_backend(args.backend, args.seed),
                                         kind=args.model)
        run = state.get("run", {})
        args.dataset = args.dataset or run.get("dataset")
        args.data_dir = args.data_dir or run.get("data_dir")
        args.limit = args.limit or run.get("limit")
        args.batch_size = run.get("batch_size", args.batch_size)
        seed = state["seed"]
    else:
        config = {"preset": args.preset, "latent": args.latent, "lr": args.lr}
        if args.model == "vae":
            config["binarize"] = args.binarize or None
        else:
            config.update(pack=args.pack, k=args.k)
        trainer = Trainer.registry[args.model](config, backend=_backend(args.backend, args.seed))
        state, seed = None, args.seed
    train = _load_data(args.dataset, args.data_dir, "train", args.limit)
    test = _load_data(args.dataset, args.data_dir, "test")
    if state is not None:
        state = {**state}
    print(f"training {trainer.kind} ({trainer.config.get('preset')}) on {train.name}: "
          f"{len(train.x)} images, batch {args.batch_size}, {args.epochs} epochs, out {out}",
          file=sys.stderr)
    from .loop import new_loop_state
    state = state or new_loop_state(seed)
    state["run"] = {"dataset": train.name, "data_dir": args.data_dir, "limit": args.limit,
                    "batch_size": args.batch_size}
    fit(trainer, train, args.epochs, args.batch_size, out, seed=seed, loop_state=state,
        test=test, figures=not args.no_figures, progress=not args.quiet)
    print(f"done: log, figures and checkpoint in {out}", file=sys.stderr)
    return 0


def _sample(args):
    from .checkpoint import load_checkpoint
    if not args.out.endswith(".npy"):
        raise UsageError(f"--out must name a .npy file, got {args.out!r}")
    trainer, _ = load_checkpoint(args.checkpoint, backend=_backend(None, args.seed))
    images = np.clip(np.asarray(trainer.sample(args.n), dtype=np.float32), 0.0, 1.0)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.save(args.out, images)
    png = args.out[:-4] + ".png"
    try:
        from .plots.grid import save_image_grid
        save_image_grid(images[:min(len(images), 100)], png)
        print(f"wrote {args.out} {images.shape} and {png}", file=sys.stderr)
    except ImportError:
        print(f"wrote {args.out} {images.shape} (no PNG: matplotlib missing)", file=sys.stderr)
    return 0


def _eval(args):
    from .checkpoint import load_checkpoint
    trainer, state = load_checkpoint(args.checkpoint, backend=_backend(None, 0))
    run = state.get("run", {})
    dataset = args.dataset or (None if args.data_dir else run.get("dataset"))
    test = _load_data(dataset, args.data_dir or run.get("data_dir"), "test", args.limit)
    metrics = dict(trainer.evaluate(test.x))
    if not args.no_image_metrics:
        from .frechet import image_metrics
        data_dir = args.data_dir or run.get("data_dir")
        images = image_metrics(trainer.sample(args.samples, seed=0), test.name,
                               data_dir=data_dir)
        metrics.update({k: v for k, v in images.items() if k != "class_histogram"})
        metrics["class_histogram"] = " ".join(f"{h:.3f}" for h in images["class_histogram"])
    print(f"{trainer.kind} ({trainer.config.get('preset')}), epoch {state['epoch']}, "
          f"{len(test.x)} test images of {test.name}:")
    for key, value in metrics.items():
        print(f"  {key:<16} {value:.4f}" if isinstance(value, float) else f"  {key:<16} {value}")
    return 0


def main(argv=None):
    from .backend import BackendError
    from .checkpoint import CheckpointError
    from .loop import TrainingDiverged, TrainingInterrupted
    try:
        args = build_parser().parse_args(argv)
        return {"train": _train, "sample": _sample, "eval": _eval}[args.command](args)
    except TrainingInterrupted as stop:
        print(f"\ninterrupted: checkpoint saved to {stop.path}\n"
              f"resume with: nnscratch train {_model_of(argv)} --resume {stop.path} "
              f"--out {os.path.dirname(stop.path) or '.'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingDiverged as err:
        print(f"nnscratch: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except (UsageError, BackendError, CheckpointError, FileNotFoundError, ValueError,
            OSError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"nnscratch: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exit_:       # --help
        return exit_.code if isinstance(exit_.code, int) else 0


def _model_of(argv):
    argv = sys.argv[1:] if argv is None else argv
    return next((a for a in argv if a in ("vae", "gan")), "vae")


if __name__ == "__main__":
    sys.exit(main())
