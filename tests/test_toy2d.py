"""The 2-D benchmark: the two mixtures, the mode-coverage metric on hand-made samples, a
short training run and the figures. (The full benchmark is benchmarks/toy2d.py.)"""
import math

import numpy as np
import pytest

from conftest import assert_plotted
from nnscratch.models import toy2d


def test_ring_modes_are_eight_points_on_the_unit_circle():
    modes, std = toy2d.mixture("ring")
    assert modes.shape == (8, 2) and std == 0.01
    assert np.allclose(np.hypot(modes[:, 0], modes[:, 1]), 1.0)
    angles = np.sort(np.mod(np.arctan2(modes[:, 1], modes[:, 0]), 2 * np.pi))
    assert np.allclose(angles, np.arange(8) * np.pi / 4)


def test_grid_modes_are_the_25_points_of_the_grid():
    modes, std = toy2d.mixture("grid")
    assert modes.shape == (25, 2) and std == 0.05
    axis = (-4, -2, 0, 2, 4)
    assert {tuple(m) for m in modes} == {(a, b) for a in axis for b in axis}


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_samples_have_the_right_modes_weights_and_std(name):
    modes, std = toy2d.mixture(name)
    x = toy2d.sample(name, 50_000, np.random.default_rng(0))
    assert x.shape == (50_000, 2) and x.dtype == np.float32
    j, _ = toy2d.nearest_mode(x, modes)
    freq = np.bincount(j, minlength=len(modes)) / len(x)
    assert np.allclose(freq, 1 / len(modes), atol=0.01)
    residual = x - modes[j]
    assert np.allclose(residual.mean(axis=0), 0.0, atol=0.05 * std)
    assert np.allclose(residual.std(axis=0), std, rtol=0.02)


def test_unknown_mixture():
    with pytest.raises(ValueError, match="ring"):
        toy2d.mixture("spiral")


# -- the metric on hand-made samples ----------------------------------------------------------
def test_every_mode_exactly():
    modes, _ = toy2d.mixture("ring")
    m = toy2d.mode_metrics(np.repeat(modes, 10, axis=0), "ring")
    assert m["modes"] == 8 and m["high_quality"] == 1.0 and m["counts"] == [10] * 8


def test_one_mode_only():
    modes, std = toy2d.mixture("grid")
    x = modes[7] + std * np.random.default_rng(0).uniform(-1, 1, (100, 2))   # within 1.5 std
    m = toy2d.mode_metrics(x, "grid")
    assert m["modes"] == 1 and m["high_quality"] == 1.0 and m["counts"][7] == 100


def test_off_mode_samples_count_for_nothing():
    modes, std = toy2d.mixture("ring")
    midway = (modes + np.roll(modes, 1, axis=0)) / 2            # between neighbouring modes
    far = np.array([[5.0, 5.0], [np.nan, 0.0]])
    m = toy2d.mode_metrics(np.concatenate([midway, far]), "ring")
    assert m["modes"] == 0 and m["high_quality"] == 0.0
    step = np.array([1.0, 0.0]) * std
    mixed = np.concatenate([midway, modes[:2], modes[:2] + 2.9 * step, modes[2:3] + 3.1 * step])
    m = toy2d.mode_metrics(mixed, "ring")                       # 3 std is the boundary
    assert m["modes"] == 2 and m["high_quality"] == pytest.approx(4 / 13)


def test_real_data_scores_the_chi_square_fraction():
    """Distance / std of real data is chi with 2 degrees of freedom: P(< 3) = 1 - e^{-4.5}."""
    for name in ("ring", "grid"):
        x = toy2d.sample(name, 20_000, np.random.default_rng(1))
        m = toy2d.mode_metrics(x, name)
        assert m["modes"] == len(toy2d.mixture(name)[0])
        assert m["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.003)


# -- training ---------------------------------------------------------------------------------
def test_short_training_run_spreads_over_several_ring_modes():
    """A few seconds of training (not the benchmark): the samples move onto the ring and
    reach more than one mode; the figures of the run can be drawn."""
    config = {"G_hidden": [32, 32], "D_hidden": [32, 32], "pack": 2, "lr": 2e-3}
    trainer, log = toy2d.train("ring", 1000, config, batch=64, seed=0, lr_final=1e-5,
                               decay_start=0.5, snapshots=(0, 1000), n_eval=500)
    assert log["metrics"]["modes"] > 1
    assert set(log["snapshots"]) == {0, 1000} and log["samples"].shape == (500, 2)
    assert all(math.isfinite(h["loss_D"]) for h in log["history"])
    modes, _ = toy2d.mixture("ring")
    before = toy2d.nearest_mode(log["snapshots"][0], modes)[1].mean()
    after = toy2d.nearest_mode(log["samples"], modes)[1].mean()
    assert after < before


def test_figures(tmp_path):
    pytest.importorskip("matplotlib")
    from nnscratch.plots.toy2d import discriminator_map, samples_over_training
    trainer, log = toy2d.train("grid", 20, {"G_hidden": [8], "D_hidden": [8], "pack": 2},
                               batch=16, seed=0, scale=0.25, snapshots=(0, 20), n_eval=100)
    samples_over_training({"GAN": log["snapshots"], "PacGAN2": log["snapshots"]}, "grid",
                          str(tmp_path / "over.png"))
    discriminator_map(trainer, "grid", log["samples"], str(tmp_path / "d.png"), resolution=20,
                      scale=0.25)
    assert_plotted(tmp_path / "over.png", lines=True)
    assert_plotted(tmp_path / "d.png", lines=True)


# -- the benchmark script's bookkeeping -------------------------------------------------------
def test_benchmark_combine_pools_the_seeds_of_split_runs(tmp_path, capsys):
    """benchmarks/toy2d.py --combine: seeds 0-1 and 2-3 of one (mixture, pack), run in two
    processes, give one row over the four seeds (mean and standard error recomputed)."""
    import importlib.util
    import json
    import os
    from pathlib import Path
    from unittest import mock
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "toy2d.py"
    spec = importlib.util.spec_from_file_location("toy2d_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ):        # the script sets BLAS thread variables on import
        spec.loader.exec_module(bench)

    def part(seeds, modes, out):
        rows = [{"seed": s, "modes": m, "high_quality": 0.9, "seconds": 1.0, "counts": []}
                for s, m in zip(seeds, modes)]
        (tmp_path / out).write_text(json.dumps({"summaries": [bench.summarize("ring", 2, rows)],
                                                "total_seconds": 2.0}))
        return str(tmp_path / out)

    paths = [part([0, 1], [8, 6], "a.json"), part([2, 3], [8, 6], "b.json")]
    bench.combine(paths, str(tmp_path / "all.json"))
    merged = json.loads((tmp_path / "all.json").read_text())
    [row] = merged["summaries"]
    assert [r["seed"] for r in row["runs"]] == [0, 1, 2, 3]
    assert row["modes_mean"] == 7.0
    assert row["modes_se"] == pytest.approx(np.std([8, 6, 8, 6], ddof=1) / 2)
    assert merged["total_seconds"] == 4.0
    assert "7.0 ± 0.6" in capsys.readouterr().out
