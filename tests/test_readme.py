"""The published numbers come from the results files under ``benchmarks/results/``.

The benchmark tables live in ``docs/benchmarks.md`` (the README keeps a screen: five headline
numbers, each linking to its table there). Each table is regenerated from its file by a
formatter and must equal, line for line, the table printed on that page (the first block of
``|`` lines after the table's anchor text). Every table of the page must be registered: to
publish a new one, add its results file and one :class:`Table` line to ``TABLES`` (a
formatter turns the file into the table's lines; the helpers below cover the usual columns).
A table with no results file is listed in ``UNSOURCED`` with the reason, and the page must
say so next to it. Figures quoted in the text are checked the same way (``FIGURES``), and so
are the README's headline numbers (``HEADLINES``).
"""
import json
import pathlib
import re
from dataclasses import dataclass
from typing import Callable

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
BENCHMARKS = ROOT / "docs" / "benchmarks.md"


@dataclass
class Table:
    anchor: str                         # text of the page just above the table (unique)
    results: str                        # file under benchmarks/results/
    format: Callable[[dict], list]      # the results -> the table's lines


def row(*cells):
    """``| a | b |``; an empty cell is ``| |``."""
    return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"


def ratio(a, b):
    return f"{a / b:.2f}"


# -- formatters, one per kind of table --------------------------------------------------------
def gradcheck_table(r):
    lines = [row("component", "NumPy", "array-api-strict"), "|---|---|---|"]
    return lines + [row(name, f"{e['numpy']:.1e}", f"{e['array_api_strict']:.1e}")
                    for name, e in r["rows"].items()]


def vae_parity_table(r):
    lines = [row("epoch", "nnscratch s", "PyTorch s", "nnscratch train", "PyTorch train",
                 "nnscratch test -ELBO", "PyTorch test -ELBO"), "|---|---|---|---|---|---|---|"]
    for e in r["epochs"]:
        a, b = e["nnscratch"], e["torch"]
        test = [f"{a['test_neg_elbo']:.2f}", f"{b['test_neg_elbo']:.2f}"]
        if e is r["epochs"][-1]:
            test = [f"**{t}**" for t in test]
        lines.append(row(e["epoch"], f"{a['time_s']:.1f}", f"{b['time_s']:.1f}",
                         f"{a['train_loss']:.2f}", f"{b['train_loss']:.2f}", *test))
    return lines


STEP_MODELS = {"vae": "classic VAE, batch 128", "mlp": "mlp GAN, batch 64",
               "seed": "seed GAN, batch 64"}


def bench_steps_table(r, memory=True, first="model"):
    head = [first, "nnscratch ms", "PyTorch ms", "nnscratch / PyTorch", "GEMM bound ms",
            "nnscratch / GEMM", "PyTorch / GEMM"]
    if memory:
        head += ["peak RSS nnscratch MiB", "PyTorch MiB", "RSS ratio"]
    lines = [row(*head), "| --- |" + " ---: |" * (len(head) - 1)]
    for key, name in STEP_MODELS.items():
        m = r["cpu"][key]
        a, b, g = (m[k]["median_ms"] for k in ("nnscratch", "torch", "gemm"))
        cells = [name, f"{a:.1f}", f"{b:.1f}", ratio(a, b), f"{g:.1f}", ratio(a, g), ratio(b, g)]
        if memory:
            ra, rb = (m["memory"][k]["peak_rss_mib"] for k in ("nnscratch", "torch"))
            cells += [f"{ra:.0f}", f"{rb:.0f}", ratio(ra, rb)]
        lines.append(row(*cells))
    return lines


def toy2d_table(r):
    lines = [row("mixture", "model", "modes (of K)", "high quality (%)", "s / run",
                 "PacGAN Table 1"), "|---|---|---|---|---|---|"]
    for s in r["summaries"]:
        k = {"ring": 8, "grid": 25}[s["mixture"]]
        model = "GAN" if s["pack"] == 1 else f"PacGAN{s['pack']}"
        modes, hq = s["anchor_pacgan_table1"]
        lines.append(row(s["mixture"], model,
                         f"{s['modes_mean']:.1f} ± {s['modes_se']:.1f} (of {k})",
                         f"{s['hq_mean']:.1f} ± {s['hq_se']:.1f}",
                         f"{s['seconds_mean']:.0f} (max {s['seconds_max']:.0f})",
                         f"{'GAN' if s['pack'] == 1 else 'PacGAN4'}: {modes}, {hq}%"))
    return lines


def gan_parity_table(r):
    f = r["final"]
    mlp, seed = f["mlp_steps_per_s"], f["seed_steps_per_s"]
    return [row("", "nnscratch", "PyTorch", "ratio"), "|---|---|---|---|",
            row("mlp steps per second (median of 3 epochs)", f"{mlp['nnscratch']:.2f}",
                f"{mlp['torch']:.2f}", ratio(mlp["nnscratch"], mlp["torch"])),
            row("seed preset steps per second (23M parameters, median of 20 steps)",
                f"{seed['nnscratch']:.2f}", f"{seed['torch']:.2f}",
                ratio(seed["nnscratch"], seed["torch"])),
            row("Frechet distance after 3 epochs", f"{f['frechet']['nnscratch']:.1f}",
                f"{f['frechet']['torch']:.1f}", f"{f['frechet_ratio']:.2f}"),
            row("classes covered (5% threshold)", f["classes_covered"]["nnscratch"],
                f["classes_covered"]["torch"], "")]


def gan_recipes_table(r, key, variants):
    lines = [row("variant", "Frechet distance", "classes (of 10)", "loss_D, last epoch",
                 "D_fake, last epoch", "minutes"), "|---|---:|---:|---:|---:|---:|"]
    for name in variants:
        run = r[key]["runs"][name]
        c = run["curves"]
        lines.append(row(f"`{name}`", f"{run['frechet']:.2f}", int(run["classes"]),
                         f"{c['train_loss_D'][-1]:.3f}", f"{c['train_D_fake'][-1]:.3f}",
                         f"{run['seconds'] / 60:.1f}"))
    return lines


def ablation_table(r):
    return gan_recipes_table(r, "mlp_e5", ["none", "bn+ema", "sn+ema", "sn+bn", "sn+bn+ema",
                                           "stable"])


def gan_targets_table(r):
    lines = [row("preset", "recipe", "backend", "Frechet distance", "classes (of 10)",
                 "share of the 10 classes in 10,000 samples"), "|---|---|---|---:|---:|---|"]
    for preset, name, key, backend in (("seed", "stable", "seed_e20", "CuPy, H200"),
                                       ("seed", "sn+bn+ema", "seed_e20", "CuPy, H200"),
                                       ("mlp", "stable", "mlp_e20", "CuPy, H200"),
                                       ("mlp", "stable", "mlp_e20_numpy", "NumPy, 2-core CPU"),
                                       ("mlp", "sn+bn+ema", "mlp_e20", "CuPy, H200")):
        run = r[key]["runs"][name]
        shares = " ".join(f"{float(h):.2f}"[1:] for h in run["class_histogram"].split())
        lines.append(row(f"`{preset}`", f"`{name}`", backend, f"{run['frechet']:.2f}",
                         int(run["classes"]), shares))
    return lines


def gpu_steps_table(text):
    """The step table of the GPU check's summary, as printed there."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| model |"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return lines[start:end]


def launch_table(r):
    """Launches and host waits per step (benchmarks/launch_count.py), before and now."""
    rows = [("", "before (61d35de), as bench_steps timed it on the H200", "before (61d35de)",
             "now", ("vae", "mlp", "seed")),
            (", recipe stable", "before (61d35de), recipe stable, losses checked on the host",
             "before (61d35de), recipe stable", "now, recipe stable", ("mlp", "seed"))]
    lines = [row("model", "launches then", "host waits then", "then, checks deferred",
                 "launches now", "host waits now"), "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for suffix, timed, deferred, now, models in rows:
        for key in models:
            t, d, n = (r[label]["models"][key] for label in (timed, deferred, now))
            name = STEP_MODELS[key] if not suffix else f"{key} GAN{suffix}"
            lines.append(row(name, t["launches"], t["syncs"], d["launches"],
                             f"**{n['launches']}**", n["syncs"]))
    return lines


TABLES = [
    Table("`python scripts/gradcheck_report.py", "gradcheck.json", gradcheck_table),
    Table("`python benchmarks/vae_parity.py --threads 1`", "vae_parity_threads1.json",
          vae_parity_table),
    Table("`python benchmarks/bench_steps.py` on 2026-11-27", "bench_steps.json",
          bench_steps_table),
    Table("`benchmarks/results/bench_steps_threads1.json`) the two", "bench_steps_threads1.json",
          lambda r: bench_steps_table(r, memory=False, first="model, one thread each")),
    Table("`python benchmarks/toy2d.py`", "toy2d.json", toy2d_table),
    Table("**Twice as long**", "toy2d_grid_steps96k.json", toy2d_table),
    Table("`python benchmarks/gan_parity.py`", "gan_parity.json", gan_parity_table),
    Table("**The 20-epoch targets**", "gan_recipes.json", gan_targets_table),
    Table("**The ablation**", "gan_recipes.json", lambda r: ablation_table(r)),
    Table("**Training step on the GPU**", "gpu_check_h200_2026-11-28.md", gpu_steps_table),
    Table("**Kernel launches per training step**", "launch_count.json", launch_table),
]

#: tables that are not results: anchor -> why
NOT_RESULTS = {}
#: result tables without a results file: anchor -> the words the page must print next to it
UNSOURCED = {"**Twenty epochs**": "no results file"}

#: figures quoted in the text: (results file, the text, made from the file)
FIGURES = [
    ("vae_parity_threads1.json", lambda r: (
        f"Final test negative ELBO: nnscratch {r['final']['test_neg_elbo']['nnscratch']:.2f}, "
        f"PyTorch {r['final']['test_neg_elbo']['torch']:.2f}")),
    ("vae_parity_threads1.json", lambda r: (
        f"IWAE\nwith K = 50: {r['final']['test_iwae_k50']['nnscratch']:.2f} against "
        f"{r['final']['test_iwae_k50']['torch']:.2f})")),
    ("vae_parity_threads1.json", lambda r: (
        f"nnscratch {r['final']['median_time_s']['nnscratch']:.2f} s, PyTorch "
        f"{r['final']['median_time_s']['torch']:.2f} s (ratio "
        f"{r['final']['time_ratio_nnscratch_over_torch']:.2f}")),
]


def readme():
    return README.read_text()


def benchmarks():
    return BENCHMARKS.read_text()


def table_after(text, anchor):
    """The first block of ``|`` lines after ``anchor`` (which must occur once)."""
    assert text.count(anchor) == 1, f"anchor {anchor!r} occurs {text.count(anchor)} times"
    lines = text[text.index(anchor):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("table", TABLES, ids=[t.results for t in TABLES])
def test_each_table_is_its_results_file(table):
    text = (RESULTS / table.results).read_text()
    results = json.loads(text) if table.results.endswith(".json") else text
    assert table_after(benchmarks(), table.anchor) == table.format(results)


#: the same tables in the docs: (page, anchor, results file, formatter)
DOC_TABLES = [
    ("docs/gan.md", "**Ablation**", "gan_recipes.json", ablation_table),
    ("docs/gan.md", "**The 20-epoch runs**", "gan_recipes.json", gan_targets_table),
]


@pytest.mark.parametrize("page, anchor, name, format", DOC_TABLES,
                         ids=[f"{p}:{a}" for p, a, _, _ in DOC_TABLES])
def test_each_table_in_the_docs_is_its_results_file(page, anchor, name, format):
    results = json.loads((RESULTS / name).read_text())
    assert table_after((ROOT / page).read_text(), anchor) == format(results)


@pytest.mark.parametrize("name, figure", [(f, fig) for f, fig in FIGURES])
def test_each_figure_in_the_text_is_its_results_file(name, figure):
    text = figure(json.loads((RESULTS / name).read_text()))
    assert text in benchmarks(), text


def test_every_table_is_registered():
    """A new table on the page needs its line in TABLES (or NOT_RESULTS, UNSOURCED)."""
    text = benchmarks()
    tables = {i for i, line in enumerate(text.splitlines())
              if line.startswith("|") and (i == 0 or not text.splitlines()[i - 1].startswith("|"))}
    registered = {}
    for anchor in [t.anchor for t in TABLES] + list(NOT_RESULTS) + list(UNSOURCED):
        first = table_after(text, anchor)[0]
        at = text[:text.index(anchor)].count("\n")
        registered[anchor] = next(i for i in sorted(tables) if i >= at and
                                  text.splitlines()[i] == first)
    assert sorted(registered.values()) == sorted(tables)
    assert len(set(registered.values())) == len(registered)
    for anchor, words in UNSOURCED.items():
        assert words in text[text.index(anchor):text.index(anchor) + 2000], anchor


# -- the README: one screen, five headline numbers from the results files ------------------

def _worst_gradcheck(r):
    return max(max(e.values()) for e in r["rows"].values())


#: the README's headline numbers: (results file, the text, made from the file)
HEADLINES = [
    ("vae_parity_threads1.json", lambda r: (
        f"nnscratch {r['final']['test_neg_elbo']['nnscratch']:.2f}, "
        f"PyTorch {r['final']['test_neg_elbo']['torch']:.2f} nats")),
    ("gan_recipes.json", lambda r: (
        f"Frechet distance {r['seed_e20']['runs']['stable']['frechet']:.2f}, "
        f"{int(r['seed_e20']['runs']['stable']['classes'])} of 10 classes")),
    ("toy2d_grid_steps96k.json", lambda r: (
        f"PacGAN{r['summaries'][0]['pack']} captures {r['summaries'][0]['modes_mean']:.1f} "
        f"of 25 modes with {r['summaries'][0]['hq_mean']:.1f}% high-quality samples")),
    ("gradcheck.json", lambda r: (
        f"worst float64 relative error {_worst_gradcheck(r):.1e} over every component "
        f"(threshold {r['threshold']:.0e})".replace("e-0", "e-"))),
    ("bench_steps_threads1.json", lambda r: (
        f"nnscratch {r['cpu']['seed']['nnscratch']['median_ms']:.1f} ms, "
        f"PyTorch {r['cpu']['seed']['torch']['median_ms']:.1f} ms")),
]


@pytest.mark.parametrize("name, headline", HEADLINES, ids=[f for f, _ in HEADLINES])
def test_each_headline_number_is_its_results_file(name, headline):
    text = headline(json.loads((RESULTS / name).read_text()))
    assert text in readme(), text


def test_readme_fits_a_screen():
    """What it is, the two commands, a row of figures, the headline numbers, links: no
    tables (they live in docs/benchmarks.md), about 40 lines."""
    text = readme()
    assert len(text.splitlines()) <= 45
    assert not any(line.startswith("|") for line in text.splitlines())
    assert "make demo    #" in text and "make test    #" in text
    for figure in ("vae_manifold.png", "gan_seed20_stable_samples.png", "toy2d_grid.png"):
        assert f"docs/figures/{figure}" in text and (ROOT / "docs" / "figures" / figure).exists()


def slug(heading):
    """The anchor GitHub (and MyST's myst_heading_anchors) gives a heading."""
    heading = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return heading.replace(" ", "-")


def test_readme_links_resolve():
    """Every relative link of the README names a file, and an anchor a heading of it."""
    links = re.findall(r"\]\(([^)#]+)(?:#([^)]+))?\)", readme())
    assert len(links) >= 10
    for path, anchor in links:
        target = ROOT / path
        assert target.exists(), path
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(), re.M)
            assert anchor in {slug(h) for h in headings}, f"{path}#{anchor}"


def test_slug_is_githubs():
    assert slug("GAN mode coverage on 2-D mixtures (PacGAN's protocol)") == \
        "gan-mode-coverage-on-2-d-mixtures-pacgans-protocol"
