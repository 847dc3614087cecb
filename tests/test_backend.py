import os
import subprocess
import sys

import numpy as np
import pytest

import nnscratch as nn


def test_default_backend_is_numpy_float32():
    b = nn.use_backend("numpy")
    assert b.xp is np and b.dtype == np.float32
    assert nn.get_backend() is b


def test_environment_variable_selects_backend():
    code = ("import nnscratch as nn; b = nn.get_backend(); "
            "print(b.name, b.dtype_name)")
    env = dict(os.environ, NNSCRATCH_BACKEND="array_api_strict", NNSCRATCH_DTYPE="float64")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["array_api_strict", "float64"]


def test_unknown_backend_and_dtype_are_clear_errors():
    with pytest.raises(nn.BackendError, match="unknown backend 'jax'"):
        nn.Backend("jax")
    with pytest.raises(nn.BackendError, match="float32 or float64"):
        nn.Backend("numpy", "float16")


def test_cupy_missing_names_the_missing_piece():
    try:
        nn.Backend("cupy")
    except nn.BackendError as err:
        assert "CuPy" in str(err) or "GPU" in str(err) or "CUDA" in str(err)
        assert "numpy" in str(err)
    else:
        pytest.skip("CuPy and a GPU are present")


def test_import_pulls_in_neither_matplotlib_nor_cupy():
    code = "import sys, nnscratch; print('matplotlib' in sys.modules, 'cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


def test_random_numbers_are_seeded_and_of_the_default_dtype(backend_name):
    a = nn.Backend(backend_name, "float32", seed=3)
    b = nn.Backend(backend_name, "float32", seed=3)
    x, y = a.normal((4, 5)), b.normal((4, 5))
    assert "float32" in str(x.dtype)
    np.testing.assert_array_equal(nn.to_numpy(x), nn.to_numpy(y))
    u = nn.to_numpy(a.uniform((1000,), -2.0, 3.0))
    assert u.min() >= -2.0 and u.max() < 3.0


def test_rng_state_round_trip():
    b = nn.Backend("numpy", seed=1)
    state = b.rng_state()
    first = nn.to_numpy(b.normal((3,)))
    b.set_rng_state(state)
    np.testing.assert_array_equal(first, nn.to_numpy(b.normal((3,))))


def test_to_numpy_copies_to_host(b32):
    x = b32.asarray([[1.0, 2.0]])
    h = nn.to_numpy(x)
    assert isinstance(h, np.ndarray) and h.dtype == np.float32
    np.testing.assert_array_equal(h, [[1.0, 2.0]])


def test_namespace_finds_the_array_module(b32):
    x = b32.zeros((2,))
    assert nn.namespace(x) is b32.xp
