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


def test_each_fused_formula_counts_once():
    """Without the fused kernels (the Python bodies counted op by op) a GAN step makes
    more than twice the launches: the counter sees what the kernels remove."""
    fused_launches = sum(lc.count_step(*lc.build("mlp", "none"))[0].values())
    plain_launches = sum(lc.count_step(*lc.build("mlp", "none"), fuse=False)[0].values())
    assert plain_launches > 2 * fused_launches
