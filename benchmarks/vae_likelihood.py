"""The likelihood benchmark: the VAE and the IWAE on dynamically binarised Fashion-MNIST,
test log-likelihood by importance sampling, against the published one-stochastic-layer
figures.

Setting (Burda et al., 2016, section 5, as replicated for Fashion-MNIST): the ``burda``
preset, encoder 784-200-200-(50, 50) and decoder 50-200-200-784 with tanh units, a
Bernoulli decoder, Glorot's initialisation; Adam with betas (0.9, 0.999) and eps 1e-4,
batches of 20; training images binarised afresh every time they are drawn
(``x ~ Bernoulli(grey level)``); the schedule of stages ``i = 1..8``, stage ``i`` making
``3^(i-1)`` passes over the 60,000 images at learning rate ``1e-3 * 10^(-(i-1)/7)``
(3,280 passes in all). Objectives: ``elbo`` (eq. vae-4) or ``iwae`` with ``--k`` samples
(eq. vae-13; the published run uses K = 50).

The test estimate: the 10,000 test images binarised once (seed 123), ``-L_K`` of eq.
(vae-8) with ``--eval-k`` = 5,000 draws per image (the noise seeded, in chunks of
``eval_rows`` decoder rows), in nats per image, an estimate of ``-log p(x)`` biased upwards
by less the larger K is. Published (one stochastic layer, K = 5,000): the VAE trained on the
ELBO 235.01, the IWAE trained with K = 50 231.95.

Resumable: every pass ends with ``checkpoint.npz`` in ``--runs/<name>`` (Ctrl-C saves the
position inside a pass), and a second call with the same arguments continues from it: the
learning rate is set from the stage of the next pass, so a run stopped anywhere and
continued is the run that was never stopped. ``--hours`` stops after the pass during which
that much time has gone by, ``--max-passes`` after that many passes in all. The estimate
of the curve is taken at the end of every stage and at the end of the session, on the first
``--curve-n`` test images; ``--final-n`` images (all 10,000 by default) when the schedule
is complete or with ``--final``.

Usage::

    .venv/bin/python benchmarks/vae_likelihood.py --objective elbo --hours 1.5
    .venv/bin/python benchmarks/vae_likelihood.py --objective iwae --k 50 --hours 1.5
    .venv/bin/python benchmarks/vae_likelihood.py --objective elbo --final   # the estimate now
    .venv/bin/python benchmarks/vae_likelihood.py --plot docs/figures/vae_likelihood_curve.png

Writes ``benchmarks/results/vae_likelihood.json`` (``--results``): per run the settings,
the curve (passes, stage, learning rate, the estimate, the test negative ELBO, the images
and K it used, seconds) and the published figure.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)                 # run from a checkout without installing

import numpy as np  # noqa: E402

#: Published test negative log-likelihoods in nats (one stochastic layer, Fashion-MNIST,
#: dynamic binarisation, K = 5,000 for the estimate): a replication of Burda et al.'s
#: Table 4 on Fashion-MNIST.
PUBLISHED = {"elbo": 235.01, "iwae": 231.95}
STAGES = 8
BATCH = 20
ADAM_EPS = 1e-4
TEST_SEED = 123
EVAL_SEED = 0


def schedule(stages=STAGES):
    """``[(i, passes, lr)]`` for stages ``i = 1..stages``: ``3^(i-1)`` passes at
    ``1e-3 * 10^(-(i-1)/7)``."""
    return [(i, 3 ** (i - 1), 1e-3 * 10 ** (-(i - 1) / 7)) for i in range(1, stages + 1)]


def stage_ends(stages=STAGES):
    """Passes done at the end of each stage: 1, 4, 13, 40, 121, 364, 1093, 3280."""
    return [int(n) for n in np.cumsum([n for _, n, _ in schedule(stages)])]


def stage_of(done, stages=STAGES):
    """``(i, lr, end)``: the stage of the pass after ``done`` passes, its learning rate and
    the passes done at its end."""
    for (i, _, lr), end in zip(schedule(stages), stage_ends(stages)):
        if done < end:
            return i, lr, int(end)
    i, _, lr = schedule(stages)[-1]
    return i, lr, int(stage_ends(stages)[-1])


def run_name(args):
    return "elbo" if args.objective == "elbo" else f"iwae_k{args.k}"


def binarised_test(n=None):
    """The test images binarised once, with a fixed seed (the same for every run)."""
    from nnscratch import datasets
    x = datasets.load("fashion-mnist", "test").x
    x = (np.random.default_rng(TEST_SEED).random(x.shape, dtype=np.float32) < x)
    x = x.astype(np.float32)
    return x if n is None else x[:n]


def estimate(trainer, x, K, chunk=100):
    """``-L_K`` (eq. vae-8) and the negative ELBO on binary ``x``, in nats per image, with
    the standard error of the first over chunks of ``chunk`` images."""
    means, elbos = [], []
    for i in range(0, len(x), chunk):
        out = trainer.evaluate(x[i:i + chunk], iw_samples=K, seed=EVAL_SEED + i)
        means.append(out["iwae"])
        elbos.append(out["neg_elbo"])
    sizes = np.array([len(x[i:i + chunk]) for i in range(0, len(x), chunk)], float)
    means, elbos = np.array(means), np.array(elbos)
    nll = float(np.sum(means * sizes) / sizes.sum())
    se = float(np.std(means, ddof=1) / np.sqrt(len(means))) if len(means) > 1 else float("nan")
    return {"nll": nll, "nll_se": se, "neg_elbo": float(np.sum(elbos * sizes) / sizes.sum()),
            "n_test": int(len(x)), "K": int(K)}


def new_trainer(args):
    import nnscratch as nn
    from nnscratch.models.vae import VAETrainer
    config = {"preset": "burda", "binarize": True, "objective": args.objective,
              "iwae_k": args.k if args.objective == "iwae" else None, "adam_eps": ADAM_EPS,
              "lr": schedule()[0][2]}
    return VAETrainer(config, backend=nn.Backend("numpy", "float32", seed=args.seed))


def load_results(path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def store(path, name, entry):
    """Update ``name`` in the JSON file ``path``, read just before (two runs share it)."""
    results = load_results(path)
    results[name] = entry
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)


def train(args):
    from nnscratch import datasets
    from nnscratch.training.checkpoint import load_checkpoint
    from nnscratch.training.loop import fit, new_loop_state
    name = run_name(args)
    out = os.path.join(args.runs, name)
    ckpt = os.path.join(out, "checkpoint.npz")
    entry = load_results(args.results).get(name) or {
        "objective": args.objective, "K": args.k if args.objective == "iwae" else 1,
        "published": PUBLISHED[args.objective], "seed": args.seed, "curve": [],
        "settings": {"preset": "burda", "batch": BATCH, "adam_eps": ADAM_EPS,
                     "schedule": [[i, n, lr] for i, n, lr in schedule()],
                     "binarisation": "dynamic (train), once with seed 123 (test)"}}
    if os.path.exists(ckpt):
        trainer, state = load_checkpoint(ckpt)
        fresh = False
    else:
        trainer, state, fresh = new_trainer(args), new_loop_state(args.seed), True
        state["run"] = {"dataset": "fashion-mnist", "data_dir": None, "limit": None,
                        "test_limit": None, "batch_size": BATCH, "epochs": None,
                        "backend": "numpy"}
    data = datasets.load("fashion-mnist", "train")
    deadline = time.time() + args.hours * 3600
    limit = min(stage_ends()[-1] if args.max_passes is None else args.max_passes,
                stage_ends()[-1])
    curve_x = binarised_test(args.curve_n)
    print(f"{name}: {state['epoch']} passes done; training to {limit} or for "
          f"{args.hours} h", file=sys.stderr, flush=True)
    while state["epoch"] < limit and time.time() < deadline:
        stage, lr, end = stage_of(state["epoch"])
        trainer.set_lr(lr)
        started = time.perf_counter()
        fit(trainer, data, state["epoch"] + 1, BATCH, out, seed=args.seed, loop_state=state,
            figures=False, progress=False, fresh=fresh, resumed_from=None if fresh else ckpt,
            stream=sys.stderr)
        fresh = False
        _, state = load_checkpoint(ckpt)
        print(f"{name}: pass {state['epoch']} (stage {stage}, lr {lr:.3g}) in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        if state["epoch"] == end or state["epoch"] in args.curve_at:
            add_point(args, entry, trainer, state, stage, lr, curve_x, name)
    if not entry["curve"] or entry["curve"][-1]["passes"] != state["epoch"]:
        stage, lr, _ = stage_of(max(state["epoch"] - 1, 0))
        add_point(args, entry, trainer, state, stage, lr, curve_x, name)
    if args.final or state["epoch"] >= stage_ends()[-1]:
        final(args, entry, trainer, state, name)
    return entry


def add_point(args, entry, trainer, state, stage, lr, x, name):
    started = time.perf_counter()
    point = {"passes": int(state["epoch"]), "stage": stage, "lr": lr,
             **estimate(trainer, x, args.eval_k), "train_loss": last_train_loss(args, name),
             "wall_s": round(state.get("wall", 0.0), 1)}
    point["eval_s"] = round(time.perf_counter() - started, 1)
    entry["curve"] = [p for p in entry["curve"] if p["passes"] != point["passes"]] + [point]
    entry["date"] = datetime.date.today().isoformat()
    entry["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, numpy, one BLAS "
                        "thread, shared with other jobs")
    store(args.results, name, entry)
    print(f"{name}: after {point['passes']} passes: -L_{args.eval_k} = {point['nll']:.2f} "
          f"+- {point['nll_se']:.2f} on {point['n_test']} test images ({point['eval_s']} s)",
          file=sys.stderr, flush=True)


def final(args, entry, trainer, state, name):
    started = time.perf_counter()
    result = estimate(trainer, binarised_test(args.final_n), args.eval_k)
    entry["final"] = {"passes": int(state["epoch"]), **result,
                      "eval_s": round(time.perf_counter() - started, 1),
                      "complete_schedule": bool(state["epoch"] >= stage_ends()[-1])}
    store(args.results, name, entry)
    print(f"{name}: final after {state['epoch']} passes: {result['nll']:.2f} +- "
          f"{result['nll_se']:.2f} (published {entry['published']})", file=sys.stderr)


def last_train_loss(args, name):
    path = os.path.join(args.runs, name, "log.jsonl")
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return lines[-1].get("train_loss") if lines else None


def table(results):
    """The markdown table of the docs: each run's latest estimate against the published."""
    lines = ["| model | trained on | passes (of 3,280) | test -log p(x), K = 5,000 | test "
             "images | published | gap |", "|---|---|---:|---:|---:|---:|---:|"]
    for name in ("elbo", "iwae_k50"):
        if name not in results:
            continue
        r = results[name]
        best = r.get("final") or r["curve"][-1]
        objective = "ELBO" if r["objective"] == "elbo" else f"IWAE bound, K = {r['K']}"
        model = "VAE" if r["objective"] == "elbo" else "IWAE"
        lines.append(f"| {model} | {objective} | {best['passes']:,} | {best['nll']:.2f} "
                     f"+- {best['nll_se']:.2f} | {best['n_test']:,} | {r['published']:.2f} | "
                     f"{best['nll'] - r['published']:+.2f} |")
    return "\n".join(lines)


def curve_table(results):
    """The markdown table of the curves: the estimate after each stage of each run."""
    lines = ["| run | passes | stage | learning rate | test -log p(x), K = 5,000 | test "
             "-ELBO | test images |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name in ("elbo", "iwae_k50"):
        for p in results.get(name, {}).get("curve", []):
            lines.append(f"| {name} | {p['passes']} | {p['stage']} | {p['lr']:.2e} | "
                         f"{p['nll']:.2f} +- {p['nll_se']:.2f} | {p['neg_elbo']:.2f} | "
                         f"{p['n_test']:,} |")
    return "\n".join(lines)


def plot(results, path):
    from nnscratch.plots.grid import pyplot
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, colour in (("elbo", "C0"), ("iwae_k50", "C1")):
        if name not in results:
            continue
        r = results[name]
        c = r["curve"]
        ax.errorbar([p["passes"] for p in c], [p["nll"] for p in c],
                    yerr=[p["nll_se"] for p in c], marker="o", color=colour,
                    label=f"{name}: -L_5000 on the first {c[-1]['n_test']} test images")
        ax.axhline(r["published"], color=colour, ls="--", lw=0.8,
                   label=f"{name}: published {r['published']:.2f} (3,280 passes)")
    for end in stage_ends():
        ax.axvline(end, color="grey", lw=0.5, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("passes over the training set (dotted: ends of Burda et al.'s stages)")
    ax.set_ylabel("test -log p(x) estimate, nats")
    ax.set_title("a subset's level is not the whole test set's (see the table)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objective", choices=["elbo", "iwae"], default="elbo")
    p.add_argument("--k", type=int, default=50, help="K of the IWAE objective")
    p.add_argument("--eval-k", type=int, default=5000, help="K of the test estimate")
    p.add_argument("--curve-n", type=int, default=1000,
                   help="test images of the estimates along the curve")
    p.add_argument("--curve-at", type=lambda s: [int(v) for v in s.split(",") if v],
                   default=[], help="extra passes (comma-separated) at which to estimate")
    p.add_argument("--final-n", type=int, default=None,
                   help="test images of the final estimate (default all 10,000)")
    p.add_argument("--final", action="store_true",
                   help="take the final estimate now, whatever the passes done")
    p.add_argument("--hours", type=float, default=1e9, help="stop after this much time")
    p.add_argument("--max-passes", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "vae_likelihood"))
    p.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results",
                                                     "vae_likelihood.json"))
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="only draw the curves stored in --results into PNG")
    p.add_argument("--table", action="store_true", help="only print the tables")
    args = p.parse_args(argv)
    if args.plot or args.table:
        results = load_results(args.results)
        if args.plot:
            print(plot(results, args.plot))
        print(table(results) + "\n\n" + curve_table(results))
        return
    if args.k < 1 or args.eval_k < 1:
        p.error("--k and --eval-k must be >= 1")
    train(args)
    print(table(load_results(args.results)))


if __name__ == "__main__":
    main()
