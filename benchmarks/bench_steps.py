"""Training-step time and peak memory of nnscratch against PyTorch and the bare-GEMM bound.

Issue 6's targets, on a CPU with float32: nnscratch's training step no slower than
PyTorch's for the classic VAE (784-400-20, batch 128), the ``mlp`` GAN and the ``seed`` GAN
(batch 64); no more than 1.3 times the bare-GEMM bound (the same matrix products, forward
and backward shapes of every Dense layer, timed alone with the same array library); peak
resident memory of a short training run at most half of PyTorch's. Run::

    .venv/bin/pip install -r benchmarks/requirements.txt      # torch==2.13.0, CPU wheel
    .venv/bin/python benchmarks/bench_steps.py                 # ~5 minutes on 2 cores
    .venv/bin/python benchmarks/bench_steps.py --quick         # a smoke run, ~1 minute

How it measures. Each implementation (nnscratch, PyTorch, the GEMM replay) runs in its own
process, so that one library's thread pools (OpenBLAS's, OpenMP's) never spin on the cores
while the other is timed. The parent interleaves them run by run: in every round each
process, in a shuffled order, takes one untimed step and then ``--steps`` timed ones. The
table reports medians over all rounds, so a training run started by someone else on the
same machine slows a few rounds of every implementation alike instead of one column.
Peak memory is the peak resident set (VmHWM) of a separate, fresh process that loads the
data, builds the model and trains for ``--memory-steps`` steps. With CuPy and a CUDA
device present, the timings are repeated on the GPU (``torch`` on ``cuda``, every step
synchronised); otherwise that part is skipped with a note. ``--devices gpu`` times the GPU
only, and its table adds the speed-up of each nnscratch step over the CPU figure saved in
``--cpu-reference`` (default ``results/bench_steps.json``, the 2-core CPU)::

    python benchmarks/bench_steps.py --devices gpu --no-memory --json gpu.json

The nnscratch side is the library's trainers, ``VAETrainer`` (preset ``classic``) and
``GANTrainer`` (presets ``mlp`` and ``seed``); the PyTorch side is ``torch_ref/nets.py``,
the same networks, losses and sequence of steps.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# the nnscratch checkout; a worker timing another tree (--before) is started with this set
sys.path.insert(0, os.environ.get("BENCH_NNSCRATCH_TREE", str(HERE.parent)))
sys.path.insert(0, str(HERE))               # torch_ref

import nnscratch as nn  # noqa: E402
from nnscratch.losses import deferred_finite_checks  # noqa: E402

MODELS = {
    "vae": {"batch": 128, "what": "classic VAE 784-400-20 ReLU, neg. ELBO (BCE logits + KL)"},
    "mlp": {"batch": 64, "what": "GAN G 100-256-512-1024-784, D 784-1024-512-256-1, lrelu 0.2"},
    "seed": {"batch": 64, "what": "GAN G 100-4096-2048-1024-784, D 784-1024-2048-4096-1"},
}
GAN_ADAM = {"lr": 2e-4, "betas": (0.5, 0.999)}
IMPLS = ("nnscratch", "torch", "gemm")
BEFORE = "nnscratch-before"     # another nnscratch tree (--before), e.g. the code before a change


def n_cores():
    """Threads for both libraries: ``--threads`` (passed to the workers as
    BENCH_THREADS), else the cores this process may use."""
    if os.environ.get("BENCH_THREADS"):
        return int(os.environ["BENCH_THREADS"])
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# -- the nnscratch side -------------------------------------------------------------------
def nnscratch_trainer(model, backend):
    """The library's trainer for ``model``; its ``step(x)`` is one training step."""
    if model == "vae":
        from nnscratch.models.vae import VAETrainer
        return VAETrainer({"preset": "classic"}, backend=backend)
    from nnscratch.models.gan import GANTrainer
    return GANTrainer({"preset": model, "recipe": "none", "lr": GAN_ADAM["lr"],
                       "betas": list(GAN_ADAM["betas"])}, backend=backend)


def dense_layers(obj, seen=None):
    """Every nn.Dense reachable from ``obj`` (a trainer, a network), each once."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, nn.Dense):
        return [obj]
    found = []
    children = []
    if isinstance(obj, (list, tuple)):
        children = list(obj)
    elif isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, nn.Module) or hasattr(obj, "networks"):
        children = list(vars(obj).values())
    for child in children:
        if isinstance(child, (nn.Module, list, tuple, dict)):
            found += dense_layers(child, seen)
    return found


def record_products(trainer, x):
    """The matrix products of one training step, as ``(kind, B, n_in, n_out)`` tuples.

    Each Dense layer's ``forward`` does ``x @ W`` ``(B, n_in) @ (n_in, n_out)``; its
    ``backward`` does ``x.T @ dy`` when parameter gradients are wanted and ``dy @ W.T``
    when the input gradient is. The layers are wrapped for one step, then restored.
    """
    products = []
    layers = dense_layers(trainer)
    for layer in layers:
        def forward(a, f=layer.forward, layer=layer):
            products.append(("x@W", a.shape[0], layer.n_in, layer.n_out))
            return f(a)

        def backward(dy, param_grads=True, input_grad=True, f=layer.backward, layer=layer):
            if param_grads:
                products.append(("x.T@dy", dy.shape[0], layer.n_in, layer.n_out))
            if input_grad:
                products.append(("dy@W.T", dy.shape[0], layer.n_in, layer.n_out))
            return f(dy, param_grads=param_grads, input_grad=input_grad)
        layer.forward, layer.backward = forward, backward
    trainer.step(x)
    for layer in layers:
        del layer.forward, layer.backward
    return products


class GemmReplay:
    """The bare-GEMM bound: only the recorded products, on arrays of the same shapes and
    layouts (transposes as views, as in nn.Dense), each result allocated as in the real step."""

    def __init__(self, products, backend):
        self.xp = backend.xp
        self.ops = []
        for kind, B, n_in, n_out in products:
            if kind == "x@W":
                a, c = backend.normal((B, n_in)), backend.normal((n_in, n_out))
            elif kind == "x.T@dy":
                a, c = backend.normal((B, n_in)).T, backend.normal((B, n_out))
            else:
                a, c = backend.normal((B, n_out)), backend.normal((n_in, n_out)).T
            self.ops.append((a, c))

    def step(self, x):
        for a, c in self.ops:
            y = a @ c
        return y


def sample_batch(batch):
    """A fixed batch of real images (the embedded Fashion-MNIST subset), float32 in [0, 1]."""
    try:
        from nnscratch import datasets
        x = datasets.load("fashion-mnist-mini", download=False).x[:batch]
    except Exception:           # data layer not importable: uniform noise times the same
        x = np.random.default_rng(0).random((batch, 784), dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


# -- worker processes ---------------------------------------------------------------------
def build_step(impl, model, device):
    """A zero-argument function doing one training step (synchronised on a GPU)."""
    batch = MODELS[model]["batch"]
    x_host = sample_batch(batch)
    if impl == "torch":
        import torch

        from torch_ref import nets
        torch.set_num_threads(n_cores())
        torch.manual_seed(0)
        dev = "cuda" if device == "gpu" else "cpu"
        runner = nets.make_step(model, device=dev)
        x = torch.from_numpy(x_host).to(dev)
        if dev == "cuda":
            def step():
                runner.step(x)
                torch.cuda.synchronize()
            return step
        return lambda: runner.step(x)
    backend = nn.Backend("cupy" if device == "gpu" else "numpy", "float32", seed=0)
    trainer = nnscratch_trainer(model, backend)
    x = backend.asarray(x_host)
    runner = trainer
    if impl == "gemm":
        runner = GemmReplay(record_products(trainer, x), backend)
        del trainer
    if device == "gpu":
        sync = backend.xp.cuda.Stream.null.synchronize

        def step():
            # as the training loop runs a step on a device: the losses' finite checks
            # deferred (each would wait for the GPU mid-step); PyTorch's reads its losses
            # once, at the end of the step
            with deferred_finite_checks():
                runner.step(x)
            sync()
        return step
    return lambda: runner.step(x)


def worker(conn, impl, model, device):
    """Serve timing requests: ``n`` -> one untimed step, then ``n`` timed steps."""
    try:
        step = build_step(impl, model, device)
        step()
        conn.send(("ready", library_config(impl)))
    except Exception as err:       # report, do not hang the parent
        conn.send(("error", f"{type(err).__name__}: {err}"))
        return
    while True:
        n = conn.recv()
        if n is None:
            break
        step()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        conn.send(times)
    conn.close()


def library_config(impl):
    """Threads and BLAS of the library this process computes with."""
    if impl == "torch":
        import torch
        return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                "torch_interop_threads": torch.get_num_interop_threads(),
                "mkl": torch.backends.mkl.is_available(),
                "mkldnn": torch.backends.mkldnn.is_available(),
                "torch_parallel": torch.__config__.parallel_info().splitlines()[-1].strip()}
    return {"numpy": np.__version__, "nnscratch": str(Path(nn.__file__).parent), **numpy_blas()}


def numpy_blas():
    """NumPy's BLAS library and the number of threads it uses (read from the loaded library)."""
    info = {}
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{cfg.get('name')} {cfg.get('version')}"
    except Exception:
        pass
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower()}
        for path in libs:
            lib = ctypes.CDLL(path)
            for sym in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                        "openblas_get_num_threads"):
                if hasattr(lib, sym):
                    info["blas_threads"] = int(getattr(lib, sym)())
                    break
            for sym in ("scipy_openblas_get_config64_", "openblas_get_config64_",
                        "openblas_get_config"):
                if hasattr(lib, sym):
                    fn = getattr(lib, sym)
                    fn.restype = ctypes.c_char_p
                    info["blas_config"] = fn().decode()
                    break
    except OSError:
        pass
    return info


# -- memory: a fresh process per (implementation, model) ----------------------------------
def memory_child(impl, model, steps):
    """Load the data, build the model, train ``steps`` steps; print peak RSS in MiB (JSON)."""
    from nnscratch import datasets
    batch = MODELS[model]["batch"]
    data = datasets.load("fashion-mnist-mini", download=False)
    rng = np.random.default_rng(0)
    if impl == "torch":
        import torch

        from torch_ref import nets
        torch.set_num_threads(n_cores())
        runner = nets.make_step(model)
        x_all = torch.from_numpy(data.x)
        batch_of = x_all.__getitem__
        index = torch.from_numpy
    else:
        runner = nnscratch_trainer(model, nn.Backend("numpy", "float32", seed=0))
        x_all = data.x
        batch_of = x_all.__getitem__
        index = np.asarray
    done = 0
    while done < steps:
        for idx in datasets.batches(len(x_all), batch, rng):
            runner.step(batch_of(index(idx)))
            done += 1
            if done == steps:
                break
    print(json.dumps({"impl": impl, "model": model, "steps": steps,
                      "peak_rss_mib": peak_rss_mib()}))


def peak_rss_mib():
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux keeps ru_maxrss across
    fork and exec, so a child started by a big parent would report the parent's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024    # KiB on Linux


def measure_memory(impl, model, steps, before_tree=None):
    import subprocess
    env = dict(os.environ)
    if impl == BEFORE:
        env["BENCH_NNSCRATCH_TREE"] = before_tree
    out = subprocess.run([sys.executable, __file__, "--memory-child", impl, model,
                          "--memory-steps", str(steps)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the parent: interleaved timing -------------------------------------------------------
def time_interleaved(models, impls, device, rounds, steps, log, before_tree=None):
    """Per (model, impl): a list of step times gathered round by round, interleaved."""
    ctx = mp.get_context("spawn")
    procs, config, starting = {}, {}, {}
    for model in models:
        for impl in impls:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker, args=(child, impl, model, device), daemon=True)
            saved = os.environ.get("BENCH_NNSCRATCH_TREE")
            if impl == BEFORE:
                os.environ["BENCH_NNSCRATCH_TREE"] = before_tree
            p.start()
            if impl == BEFORE:
                os.environ.pop("BENCH_NNSCRATCH_TREE")
                if saved is not None:
                    os.environ["BENCH_NNSCRATCH_TREE"] = saved
            starting[model, impl] = (p, parent)
    for (model, impl), (p, parent) in starting.items():   # all start at once, then report
        status, info = parent.recv()
        if status == "error":
            log(f"  {impl} {model} on {device}: {info} (skipped)")
            p.join()
            continue
        procs[model, impl] = (p, parent)
        config[impl] = info
    times = {key: [] for key in procs}
    order = list(procs)
    rng = random.Random(0)
    for r in range(rounds):
        rng.shuffle(order)
        for key in order:
            _, conn = procs[key]
            time.sleep(0.02)         # let the previous process's threads go idle
            conn.send(steps)
            times[key] += conn.recv()
        if (r + 1) % max(1, rounds // 5) == 0:
            log(f"  round {r + 1}/{rounds}, load average {os.getloadavg()[0]:.2f}")
    for p, conn in procs.values():
        conn.send(None)
        p.join()
    return times, config


def summarise(times):
    s = sorted(times)
    q = statistics.quantiles(s, n=4) if len(s) >= 4 else [s[0], statistics.median(s), s[-1]]
    return {"median_ms": 1e3 * statistics.median(s), "q1_ms": 1e3 * q[0], "q3_ms": 1e3 * q[2],
            "min_ms": 1e3 * s[0], "n": len(s)}


def gpu_available():
    try:
        nn.Backend("cupy")
    except nn.BackendError as err:
        return False, str(err)
    try:
        import torch
        if not torch.cuda.is_available():
            return False, "torch has no CUDA device (the CPU wheel is installed)"
    except ImportError:
        return False, "torch is not installed"
    return True, ""


def table(results, models, device):
    rows = ["| model | nnscratch ms | PyTorch ms | nnscratch / PyTorch | GEMM bound ms | "
            "nnscratch / GEMM | PyTorch / GEMM | peak RSS nnscratch MiB | PyTorch MiB | "
            "RSS ratio |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for model in models:
        r = results.get(model, {})

        def ms(impl):
            return r.get(impl, {}).get("median_ms")

        def ratio(a, b):
            return f"{a / b:.2f}" if a and b else "-"

        def fmt(v, digits=1):
            return f"{v:.{digits}f}" if v else "-"
        mem = r.get("memory", {})
        m_n = mem.get("nnscratch", {}).get("peak_rss_mib")
        m_t = mem.get("torch", {}).get("peak_rss_mib")
        rows.append(f"| {model} | {fmt(ms('nnscratch'))} | {fmt(ms('torch'))} | "
                    f"{ratio(ms('nnscratch'), ms('torch'))} | {fmt(ms('gemm'))} | "
                    f"{ratio(ms('nnscratch'), ms('gemm'))} | {ratio(ms('torch'), ms('gemm'))} | "
                    f"{fmt(m_n, 0)} | {fmt(m_t, 0)} | {ratio(m_n, m_t)} |")
    return "\n".join(rows)


def gpu_name():
    try:
        import cupy
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception as err:       # noqa: BLE001 - a label only
        return f"unknown GPU ({type(err).__name__})"


def cpu_reference(path):
    """``(label, {model: nnscratch CPU median ms})`` from a saved result, or ``(None, {})``."""
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None, {}
    env = saved.get("env", {})
    medians = {m: r["nnscratch"]["median_ms"] for m, r in saved.get("cpu", {}).items()
               if isinstance(r, dict) and "median_ms" in r.get("nnscratch", {})}
    return f"{env.get('cores', '?')}-core CPU", medians


def launches_per_step(models):
    """Kernel launches of one nnscratch step of each model, counted on the CPU by
    ``launch_count.py`` (``{}`` if the count fails: it is a column of the table only)."""
    try:
        import launch_count
        return {m: sum(launch_count.count_step(*launch_count.build(m, "none"))[0].values())
                for m in models}
    except Exception as err:       # noqa: BLE001 - a column only
        print(f"launch count skipped ({type(err).__name__}: {err})", file=sys.stderr)
        return {}


def gpu_table(results, models, reference, launches=None):
    """nnscratch on CuPy against PyTorch on CUDA (same rounds), and against a saved CPU run;
    with ``launches`` (per step), the host time per launch that the step's time implies."""
    label, cpu = reference
    label = label or "CPU"
    launches = launches or {}
    rows = [f"| model | nnscratch ms | PyTorch CUDA ms | nnscratch / PyTorch | GEMM bound ms | "
            f"nnscratch / GEMM | {label} nnscratch ms | speed-up over {label} | launches | "
            "us per launch |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for model in models:
        r = results.get(model, {})
        n, t, g = (r.get(i, {}).get("median_ms") for i in ("nnscratch", "torch", "gemm"))
        c, k = cpu.get(model), launches.get(model)
        f = lambda v, d=2: f"{v:.{d}f}" if v else "-"
        q = lambda a, b: f"{a / b:.2f}" if a and b else "-"
        rows.append(f"| {model} | {f(n)} | {f(t)} | {q(n, t)} | {f(g)} | {q(n, g)} | {f(c, 1)} | "
                    f"{q(c, n)} | {k or '-'} | {f(1e3 * n / k, 1) if n and k else '-'} |")
    return "\n".join(rows)


def before_table(results, models):
    """nnscratch before (--before) and now, from the same interleaved rounds."""
    rows = ["| model | before ms | now ms | speed-up | before / PyTorch | before / GEMM | "
            "peak RSS before MiB | now MiB |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for model in models:
        r = results.get(model, {})
        b, n = r.get(BEFORE, {}).get("median_ms"), r.get("nnscratch", {}).get("median_ms")
        t, g = r.get("torch", {}).get("median_ms"), r.get("gemm", {}).get("median_ms")
        mem = r.get("memory", {})
        mb = mem.get(BEFORE, {}).get("peak_rss_mib")
        mn = mem.get("nnscratch", {}).get("peak_rss_mib")
        f = lambda v, d=1: f"{v:.{d}f}" if v else "-"
        q = lambda a, c: f"{a / c:.2f}" if a and c else "-"
        rows.append(f"| {model} | {f(b)} | {f(n)} | {q(b, n)} | {q(b, t)} | {q(b, g)} | "
                    f"{f(mb, 0)} | {f(mn, 0)} |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="vae,mlp,seed")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    ap.add_argument("--steps", type=int, default=0,
                    help="timed steps per round and process (default: 10 for the VAE, "
                         "5 for the mlp GAN, 2 for the seed GAN)")
    ap.add_argument("--memory-steps", type=int, default=20)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--quick", action="store_true", help="3 rounds, 5 memory steps")
    ap.add_argument("--json", default=None,
                    help="where to save the results (default results/bench_steps.json, or "
                         "results/bench_steps_gpu.json with --devices gpu; '' for none)")
    ap.add_argument("--threads", type=int, default=0,
                    help="threads of OpenBLAS and of torch (default: the number of cores); "
                         "1 is robust when other jobs share the cores")
    ap.add_argument("--before", metavar="DIR",
                    help="also time the nnscratch package in DIR (e.g. a checkout of an older "
                         "commit), interleaved with the others, as 'nnscratch-before'")
    ap.add_argument("--devices", default="cpu,gpu",
                    help="cpu, gpu or cpu,gpu (default); memory is measured with cpu only")
    ap.add_argument("--cpu-reference", default=str(HERE / "results" / "bench_steps.json"),
                    help="a saved result whose CPU medians the GPU table compares with")
    ap.add_argument("--memory-child", nargs=2, metavar=("IMPL", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child, args.memory_steps)
        return
    if args.quick:
        args.rounds, args.memory_steps = 3, 5
    if args.threads:
        # read by OpenBLAS when a worker imports NumPy, and by n_cores() for torch
        for var in ("BENCH_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    impls = [i for i in IMPLS if not (args.no_torch and i == "torch")]
    if args.before:
        args.before = str(Path(args.before).resolve())
        impls.append(BEFORE)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)

    env = {"python": platform.python_version(), "machine": platform.machine(),
           "cpu": _cpu_name(), "cores": os.cpu_count(), "threads": n_cores(),
           "load_average_start": os.getloadavg(),
           "env_threads": {k: os.environ.get(k) for k in
                           ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    results = {"env": env, "cpu": {}, "gpu": {},
               "method": "separate processes, interleaved round by round in shuffled order; "
                         "medians of per-step times; peak RSS = VmHWM of a fresh process"}
    default_steps = {"cpu": {"vae": 10, "mlp": 5, "seed": 2},
                     "gpu": {"vae": 20, "mlp": 20, "seed": 20}}
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    if args.json is None:
        name = "bench_steps.json" if "cpu" in devices else "bench_steps_gpu.json"
        args.json = str(HERE / "results" / name)
    for device in devices:
        if device == "gpu":
            ok, why = gpu_available()
            if not ok:
                results["gpu"] = {"skipped": why}
                log(f"GPU: skipped ({why})")
                continue
        for model in models:
            steps = args.steps or default_steps[device].get(model, 3)
            log(f"{device}: timing {model} ({args.rounds} rounds x {steps} steps)")
            times, config = time_interleaved([model], impls, device, args.rounds, steps, log,
                                             args.before)
            for impl, info in config.items():
                if impl != BEFORE:
                    env.setdefault("libraries", {}).update(info)
            results[device][model] = {impl: summarise(times[model, impl])
                                      for impl in impls if (model, impl) in times}
            results[device][model]["raw_ms"] = {impl: [round(1e3 * t, 3) for t in
                                                       times[model, impl]]
                                                for impl in impls if (model, impl) in times}
    if not args.no_memory and "cpu" in devices:
        for model in models:
            log(f"memory: {model} ({args.memory_steps} training steps per process)")
            results["cpu"][model]["memory"] = {
                impl: measure_memory(impl, model, args.memory_steps, args.before)
                for impl in ("nnscratch", "torch", BEFORE) if impl in impls}
    env["load_average_end"] = os.getloadavg()

    if "cpu" in devices:
        print(f"\n## Training step, CPU float32 ({env['cpu']}, {env['cores']} cores, "
              f"{env['threads']} threads)\n")
        print(table(results["cpu"], models, "cpu"))
    if args.before and "cpu" in devices:
        print(f"\n## nnscratch before ({args.before}) and now, same rounds\n")
        print(before_table(results["cpu"], models))
    if results["gpu"] and "skipped" not in results["gpu"]:
        results["gpu"]["device"] = gpu_name()
        print(f"\n## Training step, GPU float32 ({results['gpu']['device']})\n")
        results["gpu"]["launches"] = launches_per_step(models)
        print(gpu_table(results["gpu"], models, cpu_reference(args.cpu_reference),
                        results["gpu"]["launches"]))
        if args.before:
            print(f"\n## nnscratch before ({args.before}) and now on the GPU, same rounds\n")
            print(before_table(results["gpu"], models))
    elif "gpu" in devices:
        print(f"\nGPU: skipped ({results['gpu'].get('skipped')}).")
    libs = env.get("libraries", {})
    print(f"\nnumpy {libs.get('numpy')}, BLAS {libs.get('blas')} "
          f"({libs.get('blas_threads')} threads; {libs.get('blas_config', '')}); "
          f"torch {libs.get('torch')} with {libs.get('torch_threads')} threads "
          f"({libs.get('torch_parallel', '')}); load average {env['load_average_start'][0]:.2f}"
          f" at start, {env['load_average_end'][0]:.2f} at end.")
    print(f"Medians of {args.rounds} interleaved rounds; the machine is shared, so single "
          "steps are noisy (see q1/q3 in the JSON). Peak RSS: fashion-mnist-mini, "
          f"{args.memory_steps} training steps, fresh process each.")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        log(f"wrote {args.json}")


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
