# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 06 The GPU backend
#
# One object, `nn.Backend`, holds the array module (`numpy`, `cupy`, or `array_api_strict`,
# the reference implementation of the Python array API standard), the float dtype and the
# random generator. Every array of the math is created through it, and the layers, losses
# and optimizers call only functions of the array API standard on `backend.xp`. So the same
# code runs on the CPU and on an NVIDIA GPU, and the switch is one line:
#
# ```python
# nn.use_backend("cupy")      # or NNSCRATCH_BACKEND=cupy, or nnscratch train ... --backend cupy
# ```
#
# This chapter runs the same training on every backend this machine has, times it, and
# shows that moving a trained model moves its optimizer state with it. On a machine
# without a GPU it says so, and what to do.

# %%
import os
import time

import numpy as np

import nnscratch as nn
from _common import FAST
from nnscratch import datasets
from nnscratch.models.vae import VAETrainer

available = ["numpy"]
for name in ("array_api_strict", "cupy"):
    try:
        nn.Backend(name)
        available.append(name)
    except nn.BackendError as err:
        print(f"{name}: not available here. {err}")
print("backends on this machine:", available)
if "cupy" not in available:
    print("\nNo GPU here, so only the CPU backends are timed. On a machine with an NVIDIA GPU:\n"
          "  pip install 'nnscratch[gpu]'         (or the cupy-cudaXXx wheel for your CUDA)\n"
          "  then nn.use_backend('cupy'), NNSCRATCH_BACKEND=cupy, or --backend cupy,\n"
          "  and rerun this notebook: NNSCRATCH_FAST=0 jupytext --to ipynb --execute "
          "06_gpu_backend.py")

# %% [markdown]
# ## The same numbers on every backend
# A float64 dense layer, a loss and its gradients, computed on each backend from the same
# host arrays: the results agree to rounding. (`array_api_strict` refuses anything outside
# the standard, such as NumPy-only functions or implicit conversions, so passing on it
# proves the math is portable.)

# %%
rng = np.random.default_rng(0)
x_host, t_host = rng.standard_normal((4, 6)), rng.uniform(size=(4, 3))
state = nn.Dense(6, 3, backend=nn.Backend("numpy", "float64", seed=0)).state_dict()
results = {}
for name in available:
    bk = nn.Backend(name, "float64")
    layer = nn.Dense(6, 3, backend=bk)
    layer.load_state_dict(state)
    L, ds = nn.bce_with_logits(layer.forward(bk.asarray(x_host)), bk.asarray(t_host))
    layer.backward(ds)
    results[name] = (float(L), nn.to_numpy(layer.grads["W"]))
    print(f"{name:17s} L = {results[name][0]:.15f}")
for name, (L, dW) in results.items():
    assert abs(L - results["numpy"][0]) < 1e-12 and np.allclose(dW, results["numpy"][1])

# %% [markdown]
# ## A timing table
# Training steps of the VAE (float32, batch 128): the `classic` preset (784-400-20) and the
# article's `seed` preset (784-4096-2048-20, about 23 million parameters, where a GPU pays
# off). Each backend gets one warm-up step first (on CuPy the first call compiles its
# kernels) and the batch stays on the device.

# %%
data = datasets.load("fashion-mnist-mini", "train")
x = data.x[:128]
presets = ["classic"] if FAST else ["classic", "seed"]
steps = 3 if FAST else 50
rows = []
for preset in presets:
    for name in available:
        if name == "array_api_strict" and preset == "seed":
            continue                             # a correctness tool, not a fast one
        trainer = VAETrainer({"preset": preset}, backend=nn.Backend(name, seed=0))
        xb = trainer.backend.asarray(x)
        trainer.step(xb)
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = float(trainer.step(xb)["loss"])   # float() waits for the device to finish
        ms = (time.perf_counter() - t0) / steps * 1e3
        rows.append((preset, name, ms, 128 / ms * 1e3, loss))
threads = {k: os.environ.get(k, "default") for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
print(f"{steps} steps each after one warm-up; CPU threads: {threads}, cores: {os.cpu_count()}")
print("| preset | backend | ms per step | images/s | loss after the steps |")
print("|---|---|---|---|---|")
for preset, name, ms, ips, loss in rows:
    print(f"| {preset} | {name} | {ms:.1f} | {ips:,.0f} | {loss:.1f} |")

# %% [markdown]
# ## Moving a model moves its optimizer state
# `trainer.to(backend)` moves the parameters, the gradients and Adam's moments together
# (the moments are keyed by the identity of the parameter arrays, which change when they
# move, so the optimizer re-keys them). `trainer.state_dict()` copies everything to the host
# and leaves the model where it is: a checkpoint of a GPU run loads on a CPU. Here the move
# is to `array_api_strict` (or to CuPy when there is a GPU), and training continues exactly
# where it was.

# %%
target = "cupy" if "cupy" in available else ("array_api_strict" if "array_api_strict" in
                                             available else "numpy")
a = VAETrainer({"preset": "classic"}, backend=nn.Backend("numpy", "float64", seed=0))
c = VAETrainer({"preset": "classic"}, backend=nn.Backend("numpy", "float64", seed=0))
xb = data.x[:32].astype(np.float64)
for tr in (a, c):
    tr.step(xb)                                  # one step on NumPy: Adam's moments exist
a.to(nn.Backend(target, "float64"))
eps = rng.standard_normal((32, 20))              # the same noise for both (vae-2)


def adam_step(tr, x, eps):
    """One step of VAETrainer.step with the noise given (it draws its own otherwise)."""
    L, rec, kl, dy = tr.vae.loss(tr.backend.asarray(x), tr.backend.asarray(eps))
    tr.vae.backward(dy)
    tr.optimizers["vae"].step()
    return float(L)


for _ in range(2):
    la, lc = adam_step(a, xb, eps), adam_step(c, xb, eps)
p0 = next(iter(a.vae.params.values()))
m = a.optimizers["vae"].state[id(p0)]["m"]
print(f"moved to {target}: the parameters and Adam's moments are "
      f"{type(m).__module__.split('.')[0]} arrays")
print(f"loss after two more steps on {target}: {la:.10f}; without moving: {lc:.10f}")
assert abs(la - lc) < 1e-8

# %% [markdown]
# ## Exercises
#
# 1. **Break it and watch: float64 leaks in.** A float32 model whose noise is drawn with
#    NumPy's own generator (`np.random.default_rng().standard_normal`, float64) instead of
#    the backend's: what dtype does the layer compute in, what does it cost, and what do the
#    backends other than NumPy say about it?
# 2. **Saving does not move.** Show that `state_dict()` of a model on another backend returns
#    host (NumPy) arrays while the model's own parameters stay where they were, and that
#    `load_state_dict` of those host arrays into a NumPy copy gives the same forward pass.
# 3. **Why the backends agree only "to rounding" (on paper).** Floating-point addition is
#    not associative, and a backend is free to sum in its own order (NumPy pairwise, a GPU
#    in parallel blocks). Show that summing $n$ numbers in any order, each addition rounded
#    with unit roundoff $u = \epsilon_{mach}/2$, is off by at most about $(n - 1)\,u
#    \sum_i |x_i|$, and use it to justify the tolerance $10^{-12}$ of the first comparison
#    above. Check the bound on 10,000 random numbers summed in 20 random orders.

# %% [markdown]
# <details><summary>Solution 1</summary>
#
# NumPy promotes float32 + float64 to float64, so one float64 array anywhere in the forward
# silently turns the whole layer into float64 (twice the memory and bandwidth, and on a GPU
# often many times slower). `array_api_strict`, like CuPy, refuses a NumPy array outright:
# the backend is the only way in, which is the point of creating every array through it.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
b32 = nn.Backend("numpy", "float32", seed=0)
layer32 = nn.Dense(6, 3, backend=b32)
x32 = b32.normal((4, 6))
leaked = layer32.forward(x32 + np.random.default_rng(0).standard_normal((4, 6)))
kept = layer32.forward(x32 + b32.normal((4, 6)))
print(f"noise from the backend: {kept.dtype}; noise from NumPy's generator: {leaked.dtype}")
assert kept.dtype == np.float32 and leaked.dtype == np.float64
if "array_api_strict" in available:
    strict = nn.Backend("array_api_strict", "float32", seed=0)
    try:
        nn.Dense(6, 3, backend=strict).forward(strict.normal((4, 6)) + np.ones((4, 6)))
        raise AssertionError("array_api_strict accepted a NumPy array")
    except TypeError as err:
        print("array_api_strict:", err)

# %% [markdown]
# <details><summary>Solution 2</summary>
#
# `state_dict` converts every array with `nn.to_numpy`, a copy on the host; the layer's own
# dictionary of parameters is untouched, so the model stays on its backend. Loading those
# host arrays into a NumPy layer of the same shapes gives the same forward pass.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
other = nn.Backend(target, "float64", seed=0)
away_layer = nn.Dense(6, 3, backend=other)
saved = away_layer.state_dict()
print({k: type(v).__module__.split(".")[0] for k, v in saved.items()},
      "| the layer's own:", type(away_layer.params["W"]).__module__.split(".")[0])
assert all(isinstance(v, np.ndarray) for v in saved.values())
host_layer = nn.Dense(6, 3, backend=nn.Backend("numpy", "float64"))
host_layer.load_state_dict(saved)
assert np.allclose(nn.to_numpy(away_layer.forward(other.asarray(x_host))),
                   host_layer.forward(x_host))


# %% [markdown]
# <details><summary>Solution 3</summary>
#
# Each addition returns $(a + b)(1 + \delta)$ with $|\delta| \le u$. In any order the sum of
# $n$ numbers takes $n - 1$ additions, and $x_i$ passes through at most $n - 1$ of them, so
# the computed sum is $\sum_i x_i \prod_{k}(1 + \delta_{ik})$ with at most $n - 1$ factors
# per term. Since $|\prod_k (1 + \delta_{ik}) - 1| \le (1 + u)^{n-1} - 1 = (n - 1)u +
# O(u^2)$, the error is at most $(n - 1)\,u \sum_i |x_i| + O(u^2)$, whatever the order (the
# bound is for the worst order; pairwise summation's is $\log_2 n$ in place of $n - 1$).
# The first comparison of this chapter sums $B \times n_{out} = 12$ per-entry losses, in
# all $4 \times 2.09 = 8.4$ (each computed from a sum of 6 products, which adds a bound of
# the same size): the bound is about $11 \times 1.1 \times 10^{-16} \times 8.4 \approx
# 10^{-14}$, so two correct backends cannot differ by $10^{-12}$, while any real mistake
# changes $L$ by far more.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
import math

rng3 = np.random.default_rng(3)
terms = rng3.standard_normal(10_000)
exact = math.fsum(terms)                                   # correctly rounded
u = np.finfo(np.float64).eps / 2
bound = (len(terms) - 1) * u * np.abs(terms).sum()
in_order = [np.cumsum(rng3.permutation(terms))[-1] for _ in range(20)]   # left to right
errors3 = [abs(s - exact) for s in in_order]
print(f"20 orders: {len(set(in_order))} different sums, largest error {max(errors3):.1e}, "
      f"bound (n - 1) u sum|x| = {bound:.1e}")
assert len(set(in_order)) > 1 and max(errors3) <= bound
