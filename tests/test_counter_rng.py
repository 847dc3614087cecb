"""The counter-based generator that CuPy draws with: its NumPy twin, the CUDA body compiled
for the host, the fused kernel on a GPU, and a resume that continues the same numbers."""
import json
import shutil
import subprocess

import numpy as np
import pytest

import nnscratch as nn
from nnscratch import counter_rng as cr
from nnscratch.counter_rng import CounterRNG
from nnscratch.models.vae import VAETrainer
from nnscratch.training.trainer import Trainer


def test_seeded_draws_repeat_and_have_the_right_law():
    a, b = CounterRNG(7), CounterRNG(7)
    x, y = a.standard_normal((400, 250), dtype="float32"), b.standard_normal((400, 250),
                                                                            dtype="float32")
    assert x.dtype == np.float32 and x.shape == (400, 250) and np.array_equal(x, y)
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
    u = a.random((100_000,), dtype="float32")
    assert u.dtype == np.float32 and u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert not np.array_equal(CounterRNG(8).random(5), CounterRNG(7).random(5))


def test_successive_draws_differ_and_a_saved_state_continues_them():
    rng = CounterRNG(0)
    first = rng.standard_normal(6)
    state = json.loads(json.dumps(rng.state))
    second, third = rng.standard_normal(6), rng.random(6)
    assert not np.array_equal(first, second)
    other = CounterRNG(99)
    other.state = state
    assert np.array_equal(other.standard_normal(6), second)
    assert np.array_equal(other.random(6), third)


def test_backend_rng_state_round_trip_on_every_backend(backend_name):
    b = nn.Backend(backend_name, "float32", seed=1)
    b.normal((3,))
    state = b.rng_state()
    first = nn.to_numpy(b.normal((4, 5)))
    c = nn.Backend(backend_name, "float32", seed=2)
    c.set_rng_state(state)
    np.testing.assert_array_equal(nn.to_numpy(c.normal((4, 5))), first)


def test_a_state_of_the_other_generator_seeds_deterministically():
    numpy_state = nn.Backend("numpy", seed=1).rng_state()
    a, b = CounterRNG(5), CounterRNG(6)
    backends = [nn.Backend("numpy", seed=s) for s in (5, 6)]
    for backend, rng in zip(backends, (a, b)):
        backend.rng = rng                    # the CuPy backend's generator, on the host
        backend.set_rng_state(numpy_state)
    assert np.array_equal(backends[0].normal((3,)), backends[1].normal((3,)))


def test_trainer_round_trip_with_the_counter_generator_on_the_host():
    """What ``test_state_dict_round_trip_through_the_trainer[cupy]`` checks on a GPU, with the
    generator the CuPy backend uses, on NumPy."""
    def backend(seed):
        b = nn.Backend("numpy", "float32", seed=seed)
        b.rng = CounterRNG(seed)
        return b

    a = VAETrainer({"preset": "classic", "latent": 4, "binarize": True}, backend=backend(0))
    x = np.random.default_rng(0).random((8, 784), dtype=np.float32)
    for _ in range(2):
        a.step(x)
    state = a.state_dict()
    b = Trainer.from_config(json.loads(str(state["config"])), backend=backend(99))
    b.load_state_dict(state)
    assert a.step(x) == b.step(x)


HARNESS = """
#include <cstdio>
#include <cstdlib>
#include <cmath>
template <typename T> void normal(unsigned long long base, T* outs, long n) {
  for (long i = 0; i < n; i++) { T &out = outs[i];
%s
  }
}
template <typename T> void uniform(unsigned long long base, int shift, double scale, T* outs,
                                   long n) {
  for (long i = 0; i < n; i++) { T &out = outs[i];
%s
  }
}
int main(int argc, char** argv) {
  unsigned long long base = strtoull(argv[1], 0, 10);
  double d[64]; float f[64];
  normal<double>(base, d, 64); for (int i = 0; i < 64; i++) printf("%%.17g ", d[i]);
  printf("\\n");
  uniform<float>(base, 40, 5.9604644775390625e-08, f, 64);
  for (int i = 0; i < 64; i++) printf("%%.9g ", f[i]);
  printf("\\n");
}
"""


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler")
def test_the_cuda_body_computes_the_reference_when_compiled_for_the_host(tmp_path):
    """The kernel's body, compiled as C++ on the CPU, against the NumPy reference: a break
    in the CUDA source shows without a GPU."""
    (tmp_path / "h.cpp").write_text(HARNESS % (cr.CUDA_NORMAL, cr.CUDA_UNIFORM))
    subprocess.run(["c++", "-O1", "-ffp-contract=off", "-o", str(tmp_path / "h"),
                    str(tmp_path / "h.cpp")], check=True)
    base = cr.mix(2024)
    lines = subprocess.run([str(tmp_path / "h"), str(base)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    z = cr.bits(np, base, 64)
    np.testing.assert_allclose(np.array(lines[0].split(), float), cr.normal_from_bits(np, z),
                               rtol=1e-14, atol=1e-14)
    np.testing.assert_array_equal(np.array(lines[1].split(), np.float32),
                                  cr.uniform_from_bits(np, z, "float32").astype(np.float32))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_fused_kernel_draws_what_the_reference_draws(dtype):
    cupy = pytest.importorskip("cupy")
    try:
        nn.Backend("cupy")
    except nn.BackendError as err:
        pytest.skip(str(err))
    fused, host = CounterRNG(3, xp=cupy), CounterRNG(3, xp=np)
    assert fused.fused and not host.fused
    x = cupy.asnumpy(fused.standard_normal((257, 3), dtype=dtype))
    np.testing.assert_allclose(x, host.standard_normal((257, 3), dtype=dtype),
                               rtol=1e-6 if dtype == "float32" else 1e-13, atol=1e-6)
    u = cupy.asnumpy(fused.random((1001,), dtype=dtype))
    np.testing.assert_array_equal(u, host.random((1001,), dtype=dtype))
    unfused = CounterRNG(3, xp=cupy, fused=False)
    unfused.state = {**fused.state, "counter": 0}
    np.testing.assert_allclose(cupy.asnumpy(unfused.standard_normal((257, 3), dtype=dtype)),
                               x, rtol=1e-6, atol=1e-6)
