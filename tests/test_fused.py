"""The CUDA forms of nnscratch.fused, compiled for the CPU and run against their Python
bodies: a mistake in a kernel shows here without a GPU. On a GPU the layers' gradient
checks (CuPy parametrisations) run through the kernels themselves."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import nnscratch  # noqa: F401  (registers every formula)
from conftest import _CUPY_SKIP
from nnscratch import fused

HARNESS = """
#include <cmath>
#include <cstdio>
using namespace std;
template <typename T> int run(long n) {
  %(declare)s
  for (long i = 0; i < n; i++) {
    %(read)s
  }
  for (long i = 0; i < n; i++) {
    %(load)s
    %(outputs)s
    %(body)s
    %(write)s
  }
  return 0;
}
int main() {
  int dbl; long n;
  if (scanf("%%d %%ld", &dbl, &n) != 2) return 1;
  return dbl ? run<double>(n) : run<float>(n);
}
"""


#: The C++ type of each type in a parameter list (``T`` stays the template's).
C_TYPES = {"T": "T", "float64": "double", "float32": "float"}


def harness(kernel, in_place=False):
    """C++ source running ``kernel.body`` on every entry of inputs read from stdin (a line
    per entry, one number per parameter) and printing the outputs, a line per entry. With
    ``in_place`` the outputs' starting values are read too (after the inputs), as for an
    update in place."""
    ins, outs = kernel.names(kernel.in_params), kernel.names(kernel.out_params)
    read = ins + outs if in_place else ins
    ctype = dict(zip(ins + outs, [C_TYPES[p.split()[0]] for p in
                                  (kernel.in_params + "," + kernel.out_params).split(",")]))
    return HARNESS % {
        "declare": " ".join(f"{ctype[a]}* in_{a} = new {ctype[a]}[n];" for a in read),
        "read": " ".join(f"double v_{a}; if (scanf(\"%lf\", &v_{a}) != 1) return 1; "
                         f"in_{a}[i] = ({ctype[a]})v_{a};" for a in read),
        "load": " ".join(f"const {ctype[a]} {a} = in_{a}[i];" for a in ins),
        "outputs": " ".join(f"T {a} = in_{a}[i];" if in_place else f"T {a};" for a in outs),
        "body": kernel.body,
        "write": "printf(\"" + " ".join(["%.17g"] * len(outs)) + "\\n\", "
                 + ", ".join(f"(double){a}" for a in outs) + ");",
    }


def wide(rng, n, dtype):
    """Values of both signs over many scales, with the edge cases: 0, -0, +-1e-30, +-100,
    NaN and both infinities."""
    v = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 2, n)
    v[:9] = [0.0, -0.0, 1e-30, -1e-30, 100.0, -100.0, np.nan, np.inf, -np.inf]
    return v.astype(dtype)


def unit(rng, n, dtype):
    """Values in [0, 1): targets of the cross-entropy, outputs of a sigmoid."""
    return rng.random(n).astype(dtype)


#: For each formula: its arguments (arrays, or Python numbers as the layers pass them), and
#: None where the two bodies must agree bit for bit (no exp or log inside), else, for each
#: output, the scale of the rounding error of each entry (cancellations: the loss of a big
#: logit is a difference of big terms; the gradient is divided by B): the comparison allows
#: 8 ulps of that scale and 8 ulps of the value.
INPUTS = {
    "sigmoid": (lambda r, n, t: [wide(r, n, t)], lambda s: [0.0]),
    "sigmoid_backward": (lambda r, n, t: [wide(r, n, t), unit(r, n, t)], None),
    # y rolled by 4: y = +-0 meets dy = +-100, where [y > 0] and [y >= 0] differ
    "relu_backward": (lambda r, n, t: [wide(r, n, t), np.roll(wide(r, n, t), 4)], None),
    "leaky_relu": (lambda r, n, t: [wide(r, n, t), 0.2], None),
    "leaky_relu_backward": (lambda r, n, t: [wide(r, n, t), np.roll(wide(r, n, t), 4), 0.2],
                            None),
    "bce_entries": (lambda r, n, t: [wide(r, n, t), unit(r, n, t), 64],
                    lambda s, x, B: [1.0 + np.abs(s), 1.0 / B]),
    # take != 1 - keep (as for batch norm's variance, rho B / (B - 1)): a kernel that
    # computed 1 - keep itself would agree with the body only when they are equal
    "moving_average": (lambda r, n, t: [wide(r, n, t), 0.9, 0.1 * 64 / 63, wide(r, n, t)],
                       None),
    # computed in double between the loads and the stores on the device, in T by NumPy
    # (g = v = 0 in ten entries, where eps is the whole denominator)
    "adam_update": (lambda r, n, t: [(r.standard_normal(n) * 1e-2 * (np.arange(n) > 9)
                                      ).astype(t), 0.5, 0.999,
                                     0.01 / (1 - 0.5 ** 3), 1 - 0.999 ** 3, 1e-8, 0.999,
                                     r.standard_normal(n).astype(t),
                                     (r.standard_normal(n) * 1e-2).astype(t),
                                     (r.random(n) * 1e-4 * (np.arange(n) > 9)).astype(t)],
                    lambda g, b1, b2, step, c2, eps, decay, p, m, v: [
                        1.0 + np.abs(p) + np.abs(step * m / (np.sqrt(v / c2) + eps)),
                        np.abs(m) + np.abs(g), v + g * g]),
}


def test_every_formula_has_inputs_here():
    assert sorted(fused.KERNELS) == sorted(INPUTS)


def assert_same(name, got, args, dtype):
    """``got`` (a tuple of host arrays, one per output) against the Python body on ``args``."""
    with np.errstate(invalid="ignore", over="ignore"):     # NaN and inf on purpose
        want = fused.KERNELS[name].function(*[np.copy(a) if isinstance(a, np.ndarray) else a
                                              for a in args])
    want = want if isinstance(want, tuple) else (want,)
    scales = INPUTS[name][1]
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert w.dtype == dtype and g.shape == w.shape
        if scales is None:
            np.testing.assert_array_equal(np.asarray(g, dtype), w)
        else:
            eps = np.finfo(dtype).eps
            with np.errstate(invalid="ignore"):
                scale = np.asarray(scales(*args)[i], np.float64)
            scale = np.where(np.isfinite(scale), scale, 0.0)  # inf, NaN: the same inf, NaN
            close = np.isclose(g, w, rtol=8 * eps, atol=8 * eps * scale, equal_nan=True)
            bad = np.flatnonzero(~close)[:5]
            assert close.all(), f"output {i}: at {bad.tolist()} got {g[bad]}, want {w[bad]}"


def compile_harness(tmp_path, kernel, in_place=False):
    (tmp_path / "k.cpp").write_text(harness(kernel, in_place))
    subprocess.run(["c++", "-O1", "-ffp-contract=off", "-o", str(tmp_path / "k"),
                    str(tmp_path / "k.cpp")], check=True)
    return tmp_path / "k"


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler")
@pytest.mark.parametrize("name", sorted(INPUTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_cuda_form_compiled_for_the_host_computes_the_python_body(tmp_path, name, dtype):
    kernel, n = fused.KERNELS[name], 2000
    args = INPUTS[name][0](np.random.default_rng(0), n, dtype)
    program = compile_harness(tmp_path, kernel,
                              in_place=len(args) > len(kernel.names(kernel.in_params)))
    columns = [np.broadcast_to(np.asarray(a, dtype), (n,)) for a in args]
    text = f"{int(dtype == np.float64)} {n}\n" + "\n".join(
        " ".join(repr(float(v)) for v in row) for row in zip(*columns)) + "\n"
    out = subprocess.run([str(program)], input=text, capture_output=True, text=True,
                         check=True).stdout
    got = np.array([float(v) for v in out.split()]).reshape(n, -1).T
    assert_same(name, tuple(got), args, dtype)


@pytest.mark.gpu
@pytest.mark.skipif(_CUPY_SKIP is not None, reason=str(_CUPY_SKIP))
@pytest.mark.parametrize("name", sorted(INPUTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_kernel_on_the_gpu_computes_the_python_body(name, dtype):
    """On CuPy: the kernel itself (scalars converted to ``T``, several outputs as a tuple,
    an output updated in place) against the Python body on NumPy."""
    import cupy
    args = INPUTS[name][0](np.random.default_rng(0), 2000, dtype)
    on_device = [cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    got = fused.KERNELS[name].cupy()(*on_device)
    got = tuple(cupy.asnumpy(g) for g in (got if isinstance(got, tuple) else (got,)))
    assert_same(name, got, args, dtype)
    n_in = len(fused.KERNELS[name].names(fused.KERNELS[name].in_params))
    for a, g in zip(on_device[n_in:], got):                 # outputs updated in place
        np.testing.assert_array_equal(cupy.asnumpy(a), g)


def test_a_wrong_body_is_caught(tmp_path):
    """The harness is not vacuous: a kernel that forgets alpha disagrees."""
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    wrong = fused.Kernel(fused.KERNELS["leaky_relu"].function, "T x, T alpha", "T y",
                         "y = x > 0 ? x : x;")
    program = compile_harness(tmp_path, wrong)
    out = subprocess.run([str(program)], input="0 2\n-1.0 0.2\n2.0 0.2\n",
                         capture_output=True, text=True, check=True).stdout
    assert [float(v) for v in out.split()] == [-1.0, 2.0]
    assert list(wrong.function(np.array([-1.0, 2.0]), 0.2)) != [-1.0, 2.0]


def test_numpy_and_array_api_strict_arrays_run_the_python_body(monkeypatch):
    """Only CuPy arrays take the kernel: elsewhere the decorated function is its body."""
    calls = []
    monkeypatch.setattr(fused.Kernel, "cupy", lambda self: calls.append(self.name))
    x = np.array([-2.0, 3.0], np.float32)
    np.testing.assert_array_equal(nnscratch.activations.leaky_relu(x, 0.5), [-1.0, 3.0])
    assert calls == []
    assert not fused.on_device(x)


def test_nnscratch_fused_0_runs_the_python_body_on_the_device_too(monkeypatch):
    """The switch that rules the kernels out: with it, even a device array takes the body."""
    calls = []
    monkeypatch.setattr(fused, "on_device", lambda a: True)
    monkeypatch.setattr(fused.Kernel, "cupy",
                        lambda self: lambda *args: calls.append(self.name) or args[0])
    x = np.array([-2.0, 3.0], np.float32)
    nnscratch.activations.leaky_relu(x, 0.5)
    assert calls == ["leaky_relu"]
    monkeypatch.setenv("NNSCRATCH_FUSED", "0")
    np.testing.assert_array_equal(nnscratch.activations.leaky_relu(x, 0.5), [-1.0, 3.0])
    assert calls == ["leaky_relu"]


def test_arrays_of_two_dtypes_take_the_python_body(monkeypatch):
    """The kernel's ``T`` is one dtype; mixed arrays are promoted by the array library."""
    calls = []
    monkeypatch.setattr(fused, "on_device", lambda a: True)
    monkeypatch.setattr(fused.Kernel, "cupy",
                        lambda self: lambda *args: calls.append(self.name) or args[0])
    s, x = np.zeros((2, 1), np.float32), np.ones((2, 1), np.float64)
    ell, ds = nnscratch.losses.bce_entries(s, x, 2)
    assert calls == [] and ds.dtype == np.float64
    nnscratch.losses.bce_entries(s, x.astype(np.float32), 2)
    assert calls == ["bce_entries"]


def test_keywords_are_passed_by_position_and_reserved_names_refused():
    x = np.array([-2.0, 3.0], np.float32)
    np.testing.assert_array_equal(nnscratch.activations.leaky_relu(x, alpha=0.5), [-1.0, 3.0])
    with pytest.raises(ValueError, match=r"reserves the parameter names \['n'\]"):
        fused.Kernel(len, "T x, T n", "T y", "y = x * n;")
