"""The ``nnscratch`` command: train, sample, eval.

    nnscratch train vae [--preset classic|seed] [--latent N] [--epochs N] ... [--out DIR]
    nnscratch train gan [--preset mlp|seed] [--pack M] [--k K] [--epochs N] ... [--out DIR]
    nnscratch train vae --resume runs/vae/checkpoint.npz [--epochs N] [--lr X]
    nnscratch sample --checkpoint CKPT --n N --out FILE.npy
    nnscratch eval --checkpoint CKPT
    nnscratch workbook start DIR | check DIR [NAME ...]

``--resume`` takes the model, the data, the batch size, the total of epochs and the output
directory from the checkpoint (an option that contradicts the model is an error; ``--lr``
replaces the learning rate, e.g. after a divergence). Progress and messages go to stderr,
the results of ``eval`` to stdout.

Exit status: 0 done; 2 a bad argument or a known failure (missing or corrupt checkpoint,
unknown dataset, CuPy without a GPU...), reported in one line ``nnscratch: error: ...``
(``NNSCRATCH_DEBUG=1`` shows the traceback instead); 1 the run diverged (NaN or Inf; the
last good checkpoint is kept and the message says how to resume from it); 130 Ctrl-C (a
checkpoint is saved and the exact command that resumes it is printed).
"""
from __future__ import annotations

import argparse
import itertools
import os
import shlex
import signal
import sys

import numpy as np

from . import _startup

EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 1, 130
DEFAULT_EPOCHS = 10
#: images generated at a time by ``sample`` (13 MB of float32 at 784 pixels)
SAMPLE_CHUNK = 4096


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


def _number_option(test, what):
    """An argparse type: a float for which ``test`` holds, else "expected ``what``"."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


_positive_float = _number_option(lambda v: 0 < v < float("inf"), "a positive finite number")
_fraction = _number_option(lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def _add_common_train(p, presets, default_preset, default_batch):
    p.add_argument("--dataset", default=None,
                   help="mnist, fashion-mnist, kmnist or fashion-mnist-mini (embedded, the "
                        "default)")
    p.add_argument("--data-dir", default=None,
                   help="a directory holding the dataset's IDX files (with no --dataset: mnist)")
    p.add_argument("--preset", choices=presets, default=None,
                   help=f"architecture and defaults (default {default_preset})")
    p.add_argument("--latent", type=_positive_int, default=None, help="dimension of z")
    p.add_argument("--epochs", type=_non_negative_int, default=None,
                   help=f"epochs in total (default {DEFAULT_EPOCHS}; when resuming, the "
                        "original run's)")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help=f"images per step (default {default_batch})")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="Adam learning rate (with --resume: replaces the checkpoint's)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initialisation, the noise and the data order")
    p.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                   help="array backend (default: $NNSCRATCH_BACKEND or numpy)")
    p.add_argument("--out", default=None,
                   help="output directory (default runs/<model>; when resuming, the "
                        "checkpoint's directory)")
    p.add_argument("--overwrite", action="store_true",
                   help="let a fresh run replace the files of an earlier run in --out "
                        "(checkpoint, logs, figures; without it, such a directory is refused)")
    p.add_argument("--resume", metavar="CKPT", default=None,
                   help="continue from a checkpoint.npz exactly where it stopped (the model, "
                        "data, batch size and epochs come from the checkpoint)")
    p.add_argument("--limit", type=_positive_int, default=None,
                   help="use only the first N training images (quick runs)")
    p.add_argument("--test-limit", type=_positive_int, default=None,
                   help="evaluate on the first N test images only (quick runs)")
    p.add_argument("--eval-every", type=_positive_int, default=1,
                   help="evaluate on the test split every N epochs (and after the last)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--conditional", action="store_true", default=None,
                   help="class-conditional model: both networks also read the one-hot class "
                        "label (sample with --label)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--workbook", metavar="DIR", default=None,
                   help="train with the functions of your workbook that are graded right in "
                        "place of the library's (see: nnscratch workbook)")
    p.set_defaults(default_preset=default_preset, default_batch=default_batch)


RAW_HELP = ("GAN: sample from the generator's trained weights instead of their moving "
            "average (EMA)")


def build_parser():
    parser = _Parser(prog="nnscratch", description="GANs and VAEs from scratch in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser("train", help="train a model",
                           description="Train a model; Ctrl-C saves a checkpoint to resume.")
    models = train.add_subparsers(dest="model", required=True, parser_class=_Parser)
    vae = models.add_parser("vae", help="variational autoencoder",
                            description="Train a VAE; writes log, checkpoint and figures to --out.")
    _add_common_train(vae, ["classic", "seed"], "classic", 128)
    vae.add_argument("--binarize", action="store_true", default=None,
                     help="dynamic binarisation of each batch")
    vae.add_argument("--objective", choices=["elbo", "iwae"], default=None,
                     help="training objective: the ELBO (default) or the importance-weighted "
                          "bound L_K of Burda et al.")
    vae.add_argument("--k", dest="iwae_k", type=_positive_int, default=None,
                     help="K, the samples per image of --objective iwae (default 50)")
    gan = models.add_parser("gan", help="generative adversarial network",
                            description="Train a GAN; writes log, checkpoint and figures to --out.")
    _add_common_train(gan, ["mlp", "seed"], "mlp", 64)
    gan.add_argument("--pack", type=_positive_int, default=None, help="PacGAN packing degree m")
    gan.add_argument("--k", type=_positive_int, default=None, help="D steps per G step")
    gan.add_argument("--recipe", choices=["stable", "none"], default=None,
                     help="stabilisers: stable (the default of mlp and seed: spectral norm "
                          "in D, batch norm in G, EMA of G, lr_D = 2 lr and lr_G = lr / 2) or "
                          "none (the bare GAN); the options below override single pieces")
    gan.add_argument("--lr-d", dest="lr_D", type=_positive_float, default=None,
                     help="D's learning rate (two time-scale update rule; default: --lr "
                          "times the recipe's factor, 2 for stable, 1 for none)")
    gan.add_argument("--lr-g", dest="lr_G", type=_positive_float, default=None,
                     help="G's learning rate (default: --lr times the recipe's factor, 1/2 "
                          "for stable, 1 for none)")
    gan.add_argument("--ema", type=_fraction, default=None,
                     help="decay of the moving average of G's weights that samples are "
                          "drawn from (0: none)")
    gan.add_argument("--g-norm", dest="G_norm", choices=["batch", "none"], default=None,
                     help="batch normalisation after G's hidden layers")
    gan.add_argument("--d-spectral", dest="D_spectral", action=argparse.BooleanOptionalAction,
                     default=None, help="spectral normalisation of D's layers")
    gan.add_argument("--d-dropout", dest="D_dropout", type=_fraction, default=None,
                     help="dropout probability after D's hidden layers (0: none)")
    gan.add_argument("--loss", choices=["non-saturating", "minimax"], default=None,
                     help="generator loss (default non-saturating)")
    gan.add_argument("--label-smoothing", dest="label_smoothing", type=_fraction,
                     default=None, help="one-sided label smoothing of D's real targets")

    sample = sub.add_parser("sample", help="export generated images as (N, 784) in [0, 1]",
                            description="Generate images from a checkpoint: FILE.npy, an "
                                        "(N, 784) float32 array in [0, 1], and a FILE.png grid.")
    sample.add_argument("--checkpoint", required=True)
    sample.add_argument("--n", type=_positive_int, default=64)
    sample.add_argument("--out", required=True, help="FILE.npy (a FILE.png grid is written too)")
    sample.add_argument("--seed", type=int, default=0, help="seed of the noise z")
    sample.add_argument("--backend", choices=["numpy", "cupy"], default=None)
    sample.add_argument("--raw", action="store_true", help=RAW_HELP)
    sample.add_argument("--overwrite", action="store_true",
                        help="replace an existing FILE.npy or FILE.png (without it, refused)")
    sample.add_argument("--label", default=None,
                        help="conditional model: the class to draw, its index or its name "
                             "(e.g. 7 or sneaker)")

    ev = sub.add_parser("eval", help="evaluate a checkpoint on the test split",
                        description="Print the model's metrics on the test split (VAE: "
                                    "negative ELBO and IWAE bound) and, unless "
                                    "--no-image-metrics, the Frechet distance and class "
                                    "coverage of its samples.")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--dataset", default=None, help="default: the one the model was trained on")
    ev.add_argument("--data-dir", default=None)
    ev.add_argument("--limit", type=_positive_int, default=None, help="first N test images only")
    ev.add_argument("--samples", type=_positive_int, default=10000,
                    help="generated images for the Frechet distance and class coverage")
    ev.add_argument("--no-image-metrics", action="store_true",
                    help="skip the classifier-based metrics (they train a classifier once)")
    ev.add_argument("--backend", choices=["numpy", "cupy"], default=None)
    ev.add_argument("--raw", action="store_true", help=RAW_HELP)
    _add_workbook(sub)
    return parser


def _add_workbook(sub):
    wb = sub.add_parser("workbook", help="write the backward passes yourself, get them graded",
                        description="Your workbook: stubs to fill in, one file per chapter, "
                                    "graded against the library; train with them using "
                                    "train ... --workbook DIR.")
    actions = wb.add_subparsers(dest="action", required=True, parser_class=_Parser)
    start = actions.add_parser("start", help="write the stubs into DIR (never overwriting)")
    start.add_argument("dir", metavar="DIR")
    check = actions.add_parser("check", help="grade the exercises of DIR",
                               description="Grade the exercises (all, or those NAMEd: "
                                           "exercises or chapters such as 01_dense); exit "
                                           "status 0 when every attempted one is right.")
    check.add_argument("dir", metavar="DIR")
    check.add_argument("names", metavar="NAME", nargs="*")
    check.add_argument("--time-limit", type=_positive_float, default=10.0,
                       help="seconds an exercise may run before it is stopped (default 10)")


def _use_raw_weights(trainer, raw):
    """``--raw``: a GAN trained with ``ema`` samples from G's own weights, not their
    average."""
    if raw and getattr(trainer, "ema", None) is None:
        raise UsageError("--raw applies to a GAN trained with an EMA of its generator; "
                         "this checkpoint has none")
    if raw:
        trainer.sample_raw = True


def _backend(name, seed):
    from .backend import Backend
    return Backend(name or os.environ.get("NNSCRATCH_BACKEND", "numpy"), "float32", seed)


def _load_data(dataset, data_dir, split, limit=None):
    from . import datasets
    if dataset is not None and dataset not in datasets.names():
        raise UsageError(f"unknown dataset {dataset!r}; "
                         f"choose one of {', '.join(datasets.names())}")
    if data_dir is not None and not os.path.isdir(data_dir):
        raise UsageError(f"--data-dir {data_dir!r} is not a directory")
    name = dataset or ("mnist" if data_dir else "fashion-mnist-mini")
    return datasets.load(name, split, data_dir=data_dir, limit=limit)


#: command-line option -> config key, per model (None: not given, use the preset's)
MODEL_OPTIONS = {"vae": ("preset", "latent", "binarize", "objective", "iwae_k", "conditional"),
                 "gan": ("preset", "latent", "pack", "k", "recipe", "ema", "G_norm",
                         "D_spectral", "D_dropout", "loss", "label_smoothing", "conditional")}
#: learning rates: set on a new run, and like --lr replace the checkpoint's on --resume
RATE_OPTIONS = {"vae": (), "gan": ("lr_D", "lr_G")}
#: config key -> its command-line option, where the two are spelled differently
OPTION_NAMES = {"lr_D": "--lr-d", "lr_G": "--lr-g", "G_norm": "--g-norm",
                "D_spectral": "--d-spectral", "D_dropout": "--d-dropout",
                "label_smoothing": "--label-smoothing", "iwae_k": "--k"}


def _new_trainer(args):
    from .training.trainer import Trainer
    config = {key: getattr(args, key)
              for key in MODEL_OPTIONS[args.model] + RATE_OPTIONS[args.model]}
    config["preset"] = config["preset"] or args.default_preset
    config["lr"] = args.lr
    return Trainer.registry[args.model](config, backend=_backend(args.backend, args.seed))


def _resume(args):
    """The trainer and loop state of ``--resume``; the run's options default to the
    checkpoint's, and a model option that contradicts the checkpoint is an error."""
    from .training.checkpoint import load_checkpoint
    run_peek = _peek_run(args.resume)
    trainer, state = load_checkpoint(
        args.resume, backend=_backend(args.backend or run_peek.get("backend"), args.seed),
        kind=args.model)
    for key in MODEL_OPTIONS[args.model]:
        given, stored = getattr(args, key), trainer.config.get(key)
        if given is not None and given != stored:
            option = OPTION_NAMES.get(key, f"--{key}")
            raise UsageError(f"{option} {given} contradicts the checkpoint ({key} = {stored}); "
                             f"a resumed run keeps its model (leave {option} out)")
    run = state.get("run", {})
    if args.batch_size is not None and args.batch_size != run.get("batch_size", args.batch_size):
        raise UsageError(f"--batch-size {args.batch_size} differs from the checkpoint's "
                         f"{run['batch_size']}; a resumed run keeps its batch size")
    if args.lr is not None:
        trainer.set_lr(args.lr)
    for key in RATE_OPTIONS[args.model]:
        if getattr(args, key) is not None:
            trainer.set_network_lr(key[3:], getattr(args, key))
    for key in ("dataset", "data_dir", "limit", "test_limit", "batch_size", "epochs"):
        if getattr(args, key) is None:
            setattr(args, key, run.get(key))
    args.out = args.out or os.path.dirname(os.path.abspath(args.resume))
    from .training.loop import check_resumable
    from .training.runlog import RunLog
    check_resumable(state)               # these two fail now, in one line, before training
    RunLog(args.out).read()
    return trainer, state


def _peek_run(path):
    """The ``run`` options stored in a checkpoint, read without loading its arrays (empty
    when unreadable: the real load then gives the error)."""
    from .training.checkpoint import CheckpointError, read_head
    try:
        return read_head(path)[1].get("run", {})
    except CheckpointError:
        return {}


def _command(argv, checkpoint, *extra, drop=()):
    """The command line ``argv`` resuming from ``checkpoint`` (its own ``--resume``, the
    options in ``extra`` and those in ``drop`` replaced or left out)."""
    drop = {"--resume", *drop} | {extra[i] for i in range(0, len(extra), 2)}
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in drop:
            skip = True
        elif a.split("=", 1)[0] not in drop:
            kept.append(a)
    return "nnscratch " + shlex.join(kept + ["--resume", str(checkpoint), *extra])


def _train(args):
    import importlib

    from .training.loop import TrainingDiverged, TrainingInterrupted, fit, new_loop_state, sync_log
    from .training.rundir import check_fresh, check_unlocked
    importlib.import_module(f"nnscratch.models.{args.model}")
    if args.resume:
        trainer, state = _resume(args)
    else:
        trainer, state = _new_trainer(args), new_loop_state(args.seed)
    args.epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
    if args.epochs == 0 and not args.resume:
        raise UsageError("--epochs 0 trains nothing and writes nothing; give --epochs N with "
                         "N >= 1")
    args.batch_size = args.batch_size or args.default_batch
    pack = int(trainer.config.get("pack") or 1)
    if args.batch_size % pack:
        raise UsageError(f"--batch-size {args.batch_size} is not a multiple of the pack "
                         f"size {pack}")
    out = args.out or os.path.join("runs", args.model)
    train = _load_data(args.dataset, args.data_dir, "train", args.limit)
    test = _load_data(args.dataset, args.data_dir, "test", args.test_limit)
    state["run"] = {"dataset": train.name, "data_dir": args.data_dir, "limit": args.limit,
                    "test_limit": args.test_limit,
                    "batch_size": args.batch_size, "epochs": args.epochs,
                    "backend": trainer.backend.name}
    if args.resume and state["epoch"] >= args.epochs:
        sync_log(os.path.dirname(os.path.abspath(args.resume)), state)
        print(f"{args.resume} has {state['epoch']} epochs done already; pass --epochs N with "
              f"N > {state['epoch']} to train more", file=sys.stderr)
        return 0
    check_unlocked(out)                # fit checks both again under the directory's lock
    if not args.overwrite:
        check_fresh(out, args.resume)
    print(f"training {trainer.kind} ({trainer.config.get('preset')}) on {train.name}: "
          f"{len(train.x)} images, batch {args.batch_size}, epochs {state['epoch'] + 1}.."
          f"{args.epochs}, backend {trainer.backend.name}, out {out}", file=sys.stderr)
    fit = _with_workbook(args, trainer, state, fit)
    try:
        fit(trainer, train, args.epochs, args.batch_size, out, seed=args.seed, loop_state=state,
            test=test, eval_every=args.eval_every, figures=not args.no_figures,
            progress=not args.quiet, resumed_from=args.resume, overwrite=args.overwrite,
            fresh=not args.resume)
    except TrainingInterrupted as stop:
        stop.command = _command(args.argv, stop.path)
        raise
    except TrainingDiverged as err:
        if err.checkpoint is not None:
            lower = f"{float(trainer.config.get('lr') or 1e-3) / 10:g}"
            # --lr scales both networks' rates (their ratio kept), so a --lr-d or --lr-g of
            # the first command would undo it for that network: left out
            err.command = _command(args.argv, err.checkpoint, "--lr", lower,
                                   drop=("--lr-d", "--lr-g"))
        raise
    print(f"done: log, figures and checkpoint in {out}", file=sys.stderr)
    return 0


def _workbook(args):
    from .workbook import exercises, grader
    if args.action == "start":
        written, kept = exercises.start(args.dir)
        if written:
            print(f"wrote {', '.join(written)} into {args.dir}")
        if kept:
            print(f"kept {', '.join(kept)} (a file of the workbook is never overwritten)")
        first = os.path.join(args.dir, next(iter(exercises.TOPICS)))
        print(f"next: write dense_forward in {first}, then: nnscratch workbook check "
              f"{shlex.quote(args.dir)} dense_forward")
        return 0
    results, modules = grader.grade_workbook(args.dir, args.names, args.time_limit)
    table, errors, status = grader.report(results, modules, args.dir)
    print(table)
    if errors:
        print(errors, file=sys.stderr)
    return status


def _with_workbook(args, trainer, state, fit):
    """``fit`` itself, or (``--workbook DIR``) ``fit`` run with the student's functions that
    are graded right in place of the library's; says which, and stores them in the run's
    state (saved in its checkpoints)."""
    if not args.workbook:
        return fit
    from .workbook import grader, plug
    if trainer.backend.name != "numpy":
        raise UsageError("--workbook runs your NumPy functions: train with --backend numpy")
    results, modules = grader.grade_workbook(args.workbook)
    failed = [m for m in modules.values() if isinstance(m, grader.ImportFailure)]
    if failed:
        print(failed[0].traceback.rstrip(), file=sys.stderr)
        raise UsageError(failed[0].summary)
    right = {r.exercise.name: getattr(modules[r.exercise.topic], r.exercise.name)
             for r in results if r.status == "right"}
    wrong = [r.exercise.name for r in results if r.status == "wrong"]
    print(f"workbook {args.workbook}: the student's {', '.join(right) or '(none yet)'}; the "
          "library's everything else" + (f" (not right yet: {', '.join(wrong)}; see nnscratch "
                                         "workbook check)" if wrong else ""), file=sys.stderr)
    state["run"]["workbook"] = {"dir": os.path.abspath(args.workbook), "student": list(right),
                                "wrong": wrong}

    def fit_with_student_functions(*a, **kw):
        with plug.plugged(right) as calls:
            try:
                return fit(*a, **kw)
            finally:
                used = ", ".join(f"{k} ({n} calls)" for k, n in calls.items())
                unused = [k for k in right if k not in calls]   # e.g. the GAN's in a VAE run
                print(f"the student's functions this run called: {used or 'none'}"
                      + (f"; not used by this model: {', '.join(unused)}" if unused else ""),
                      file=sys.stderr)
    return fit_with_student_functions


def _sample_files(args):
    """``(npy, png)`` that ``sample`` writes (``png`` None without matplotlib), after
    refusing to replace either unless ``--overwrite``, and removing the temporary files a
    killed ``sample`` left for them."""
    from .training.rundir import file_kind, remove_stale_temporaries
    if not args.out.endswith(".npy") or os.path.basename(args.out) == ".npy":
        raise UsageError(f"--out must name a .npy file (NAME.npy), got {args.out!r}")
    try:
        from .plots.grid import pyplot
        pyplot()
        png = args.out[:-4] + ".png"
    except ImportError:
        png = None
    for path in filter(None, (args.out, png)):
        kind = file_kind(path)
        if kind not in (None, "a symbolic link"):
            raise UsageError(f"{path} is {kind}; sample writes a file there (choose another "
                             "--out)")
        if os.path.lexists(path) and not args.overwrite:
            raise UsageError(f"{path} exists; pass --overwrite to replace it, or choose "
                             "another --out")
    remove_stale_temporaries(os.path.dirname(os.path.abspath(args.out)), owner=False,
                             targets=[os.path.basename(p) for p in (args.out, png) if p])
    return args.out, png


def _sample(args):
    from .training.checkpoint import atomic_group, load_checkpoint, save_npy_rows
    from .training.progress import ProgressBar
    npy, png = _sample_files(args)
    trainer, state = load_checkpoint(args.checkpoint, backend=_backend(args.backend, args.seed))
    _use_raw_weights(trainer, args.raw)
    label = _label(trainer, args.label, state.get("run", {}).get("dataset"))
    blocks = _sample_blocks(trainer, args.n, args.seed, label)
    first = next(blocks)
    shape, grid = (args.n, first.shape[1]), first[:100].copy()
    # both files are written to temporaries first and renamed together: a failure at the
    # PNG (a full disk) leaves the earlier .npy and .png as they were
    with ProgressBar(total=args.n, desc="sample", unit="img",
                     disable=args.n <= SAMPLE_CHUNK) as bar, atomic_group():
        def counted():
            for block in itertools.chain([first], blocks):
                bar.update(len(block))
                yield block
        save_npy_rows(npy, shape, counted())
        if png is not None:
            from .plots.grid import save_image_grid
            save_image_grid(grid, png)
    print(f"wrote {npy} {shape} and {png}" if png else
          f"wrote {npy} {shape} (no PNG: matplotlib missing)", file=sys.stderr)
    return 0


def _sample_blocks(trainer, n, seed, labels=None):
    """``n`` samples (host float32 in [0, 1]) in blocks of :data:`SAMPLE_CHUNK` that
    continue one stream of noise seeded with ``seed`` (on NumPy the images of
    ``trainer.sample(n, seed=seed)``, for any block size), so that memory stays that of
    one block whatever ``n``: ``sample`` and ``eval`` draw through it. ``labels``: a
    conditional model's class, one for every sample (an int) or one each (``(n,)``)."""
    backend = trainer.backend.seeded(seed)
    saved, trainer.backend.rng = trainer.backend.rng, backend.rng
    try:
        for start in range(0, n, SAMPLE_CHUNK):
            stop = min(start + SAMPLE_CHUNK, n)
            given = {} if labels is None else \
                {"labels": labels if np.ndim(labels) == 0 else labels[start:stop]}
            images = np.asarray(trainer.sample(stop - start, **given), np.float32)
            yield np.clip(images, 0.0, 1.0, out=images)
    finally:
        trainer.backend.rng = saved


def _label(trainer, text, dataset):
    """``--label``: a class index or a class name of ``dataset`` (case and punctuation
    ignored) for a conditional model; None for an unconditional one."""
    conditional = getattr(trainer, "conditional", False)
    if not conditional:
        if text is not None:
            raise UsageError("--label applies to a conditional model (trained with "
                             "--conditional); this checkpoint is not one")
        return None
    from . import datasets
    # the embedded subset is Fashion-MNIST's
    info = datasets.REGISTRY.get("fashion-mnist" if dataset == datasets.EMBEDDED else dataset)
    names = info.class_names if info else tuple(str(c) for c in range(trainer.n_classes))
    if text is None:
        raise UsageError(f"this checkpoint is a conditional model: give --label, one of "
                         f"0..{trainer.n_classes - 1} or a class name ({', '.join(names)})")
    if text.strip().lstrip("-").isdigit():
        value = int(text)
        if not 0 <= value < trainer.n_classes:
            raise UsageError(f"--label {value} is outside the classes 0..{trainer.n_classes - 1}")
        return value

    def key(name):
        return "".join(ch for ch in name.lower() if ch.isalnum())
    found = [c for c, name in enumerate(names)
             if key(text) in (key(name), *map(key, name.split("/")))]
    if not found:
        raise UsageError(f"--label {text!r} is not a class of {dataset}; choose one of "
                         f"{', '.join(names)} or 0..{trainer.n_classes - 1}")
    return found[0]


def _eval(args):
    from .training.checkpoint import load_checkpoint
    if args.samples < 2 and not args.no_image_metrics:
        raise UsageError(f"--samples {args.samples}: the Frechet distance needs at least 2")
    trainer, state = load_checkpoint(args.checkpoint, backend=_backend(args.backend, 0))
    _use_raw_weights(trainer, args.raw)
    run = state.get("run", {})
    dataset = args.dataset or (None if args.data_dir else run.get("dataset"))
    data_dir = args.data_dir or run.get("data_dir")
    test = _load_data(dataset, data_dir, "test", args.limit)
    conditional = getattr(trainer, "conditional", False)
    metrics = dict(trainer.evaluate(test.x, **({"labels": test.labels} if conditional else {})))
    if not args.no_image_metrics:
        from .metrics.frechet import image_metrics
        # a conditional model draws every class equally often, as the test split has them
        labels = np.arange(args.samples) % trainer.n_classes if conditional else None
        images = image_metrics(_sample_blocks(trainer, args.samples, 0, labels), test.name,
                               data_dir=data_dir, labels=labels)
        lists = ("class_histogram", "class_consistency_per_class")
        metrics.update({k: v for k, v in images.items() if k not in lists})
        for key in lists:
            if key in images:
                metrics[key] = " ".join(f"{h:.3f}" for h in images[key])
    source = f" in {data_dir}" if data_dir else ""
    print(f"{trainer.kind} ({trainer.config.get('preset')}), epoch {state['epoch']}, "
          f"{len(test.x)} test images of {test.name}{source}:")
    for key, value in metrics.items():
        print(f"  {key:<16} {value:.4f}" if isinstance(value, float) else f"  {key:<16} {value}")
    return 0


def console_main():
    """The ``nnscratch`` command (the console script and ``python -m nnscratch``): :func:`main`,
    then a Ctrl-C while the interpreter shuts down is ignored (the work is done and reported;
    it would otherwise print a traceback from the interpreter's cleanup)."""
    try:
        status = main()
    except KeyboardInterrupt:           # in the instant between main's handlers and here
        print("\ninterrupted", file=sys.stderr)
        status = EXIT_INTERRUPTED
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return status


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Set ``NNSCRATCH_DEBUG=1`` to get the traceback of an error instead of its one line.
    """
    try:
        # from here a Ctrl-C is a KeyboardInterrupt, answered below (see nnscratch._startup)
        _startup.release()
        from .backend import BackendError
        from .training.checkpoint import CheckpointError
        from .training.loop import TrainingDiverged, TrainingInterrupted
    except KeyboardInterrupt:
        print("\ninterrupted while starting (nothing was done)", file=sys.stderr)
        return EXIT_INTERRUPTED
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        return {"train": _train, "sample": _sample, "eval": _eval,
                "workbook": _workbook}[args.command](args)
    except TrainingInterrupted as stop:
        print(f"\ninterrupted: checkpoint saved to {stop.path} ({stop.epoch} epochs and "
              f"{stop.batch} batches of the next done)\n"
              f"resume with: {getattr(stop, 'command', '')}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingDiverged as err:
        print(f"nnscratch: {err}", file=sys.stderr)
        if getattr(err, "command", None):
            print(f"for example: {err.command}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        print("\ninterrupted (nothing saved by this Ctrl-C; a run keeps its last checkpoint)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, BackendError, CheckpointError, FileNotFoundError, ValueError,
            OSError) as err:
        if os.environ.get("NNSCRATCH_DEBUG"):
            raise
        # one line, all of it (a download's failure lists every mirror and the way by hand);
        # an OSError of ours carries its path in its words: no "[Errno 28]" before them
        text = err.strerror if isinstance(err, OSError) and err.strerror and \
            err.filename is None and err.errno is not None else str(err)
        message = " ".join(line.strip() for line in text.splitlines() if line.strip())
        print(f"nnscratch: error: {message or type(err).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError as err:
        if os.environ.get("NNSCRATCH_DEBUG"):
            raise
        from .training.checks import available_memory, format_bytes
        have = available_memory()
        # NumPy's message says what it could not allocate; this, what there is
        print(f"nnscratch: error: out of memory{f' ({err})' if str(err) else ''}"
              f"{f'; {format_bytes(have)} available now' if have else ''}; try a smaller "
              "--batch-size, --n, --samples or model", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exit_:       # --help
        return exit_.code if isinstance(exit_.code, int) else 0


if __name__ == "__main__":
    sys.exit(console_main())
