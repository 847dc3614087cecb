"""What a training step asks of a GPU, counted on the CPU (benchmarks/launch_count.py): the
counter itself, no host round trip inside any step, and the launch budgets the GPU speed
rests on (a step on CuPy costs about 15 microseconds of host time per launch)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import launch_count as lc  # noqa: E402

#: Launches per step today (benchmarks/launch_count.py). A change that adds launches to a
#: step fails here: raise a budget only with the reason, and the GPU table re-measured.
BUDGETS = {"vae": 66, "mlp": 120}


def test_the_counter_counts_operations_creations_and_syncs_not_views():
    b = lc.counting_backend()
    xp = b.xp
    a = b.asarray(np.ones((4, 3), np.float32))
    lc.TALLY.reset()
    c = a * 2.0 + a                         # two launches
    z = xp.zeros((4, 3), dtype=xp.float32)  # one
    v = xp.reshape(c, (3, 4)).T             # views: none
    s = xp.sum(v + z)                       # two
    value = float(s / 12)                   # one, and one sync
    assert value == 3.0
    assert sum(lc.TALLY.launches.values()) == 6
    assert sum(lc.TALLY.syncs.values()) == 1
    lc.TALLY.reset()


@pytest.mark.parametrize("model", sorted(BUDGETS))
def test_a_step_stays_within_its_launch_budget_and_never_waits_for_the_device(model):
    launches, syncs = lc.count_step(*lc.build(model, "none"))
    assert sum(syncs.values()) == 0, dict(syncs)
    assert sum(launches.values()) <= BUDGETS[model], launches.most_common(8)


def test_the_stable_recipe_never_waits_for_the_device_either():
    launches, syncs = lc.count_step(*lc.build("mlp", "stable"))
    assert sum(syncs.values()) == 0, dict(syncs)
    assert sum(launches.values()) > BUDGETS["mlp"]       # more layers' worth of work


def test_each_fused_formula_counts_once_and_its_python_body_not_at_all():
    """The counter sees the CuPy path: each formula of nnscratch.fused one launch, none of
    the operations of its Python body (which the same step without fusion does count)."""
    bodies = ("activations:sigmoid", "activations:relu_backward", "activations:leaky_relu",
              "losses:bce_entries", "losses:bce_terms", "losses:log1p", "ema:moving_average")
    expected = {"vae": {"relu_backward", "bce_entries"},
                "mlp": {"leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward",
                        "bce_entries"}}
    for model, formulas in expected.items():
        launches = lc.count_step(*lc.build(model, "none"))[0]
        assert {w.split(":")[1].split(" ")[0] for w in launches if w.startswith("fused:")} \
            == formulas
        assert not [w for w in launches if w.startswith(bodies)]
        plain = lc.count_step(*lc.build(model, "none"), fuse=False)[0]
        assert [w for w in plain if w.startswith(bodies)]
    stable = lc.count_step(*lc.build("mlp", "stable"))[0]
    assert "fused:moving_average (1 kernel)" in stable


def test_a_copy_to_the_host_inside_a_step_is_a_sync(monkeypatch):
    trainer, x = lc.build("mlp", "none")
    plain = lc.nn.models.gan.GAN.g_loss

    def g_loss_that_looks(self, z, loss="non-saturating", y=None):
        out = plain(self, z, loss, y)
        lc.nn.models.gan.to_numpy(out[1])           # e.g. printing a gradient
        return out
    monkeypatch.setattr(lc.nn.models.gan.GAN, "g_loss", g_loss_that_looks)
    syncs = lc.count_step(trainer, x)[1]
    assert dict(syncs) == {"models.gan:g_step": 1}
