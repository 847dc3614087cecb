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
# The same training on NumPy and on CuPy: one backend object holds the array module, the
# dtype and the random generator, and every array of the math is created through it. On a
# machine without a GPU this notebook says so and times NumPy alone.

# %%
import time

import numpy as np

import nnscratch as nn
from nnscratch import datasets
from nnscratch.vae import VAETrainer
from _common import FAST

backends = ["numpy"]
try:
    nn.Backend("cupy")
    backends.append("cupy")
except nn.BackendError as err:
    print("No GPU here:", err)
    print("On a machine with an NVIDIA GPU: pip install 'nnscratch[gpu]', then "
          "nnscratch.use_backend('cupy') or NNSCRATCH_BACKEND=cupy or --backend cupy.")

# %%
data = datasets.load("fashion-mnist-mini", "train")
steps = 5 if FAST else 200
x = data.x[:128]
rows = []
for name in backends:
    trainer = VAETrainer({"preset": "seed" if not FAST else "classic"},
                         backend=nn.Backend(name, seed=0))
    xb = trainer.backend.asarray(x)           # the batch stays on the device
    trainer.step(xb)                          # warm-up (CUDA kernels compile here)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = trainer.step(xb)["loss"]
    rows.append((name, (time.perf_counter() - t0) / steps * 1e3, loss))
print("| backend | ms per step | loss |\n|---|---|---|")
for name, ms, loss in rows:
    print(f"| {name} | {ms:.1f} | {loss:.1f} |")

# %% [markdown]
# Moving a trained model: `trainer.to(nn.Backend("cupy"))` moves parameters, gradients and
# Adam's moments together; `trainer.state_dict()` copies to the host without moving anything.
