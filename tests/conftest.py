"""One test suite for every backend: NumPy, array-api-strict (CPU) and CuPy (GPU only)."""
import importlib.util

import numpy as np
import pytest

import nnscratch as nn


def _cupy_skip_reason():
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (pip install 'nnscratch[gpu]' on a machine with a GPU)"
    try:
        nn.Backend("cupy")
    except nn.BackendError as err:
        return str(err)
    return None


_CUPY_SKIP = _cupy_skip_reason()

#: The threshold of every gradient check in this suite, stated once and independent of the
#: code under test: the relative error of eq. (gradcheck-3), in float64, of smooth functions
#: (docs/gradcheck.md: about 1e-7; kinks need care). Tests import it from here, never
#: ``nnscratch.gradcheck.TOLERANCE``: a wrong threshold there must not pass the checks.
TOLERANCE = 1e-7

BACKEND_PARAMS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("array_api_strict", id="strict"),
    pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu] + (
        [pytest.mark.skip(reason=_CUPY_SKIP)] if _CUPY_SKIP else [])),
]


def assert_plotted(path, lines=False, images=False):
    """Fail unless the PNG at ``path`` shows data, not only axes: ``lines``, more than 20
    coloured pixels (channels apart by more than 0.2: curves, points, colour maps; axes,
    ticks and text are grey); ``images``, more than 20 grey levels (a grid of images; a
    blank or constant grid has two or three)."""
    import matplotlib.image
    rgb = matplotlib.image.imread(str(path))[..., :3]
    assert rgb.shape[0] > 20 and rgb.shape[1] > 20, rgb.shape
    if lines:
        coloured = int(((rgb.max(axis=2) - rgb.min(axis=2)) > 0.2).sum())
        assert coloured > 20, f"{path}: {coloured} coloured pixels: nothing plotted?"
    if images:
        levels = len(np.unique(np.round(rgb.mean(axis=2) * 255)))
        assert levels > 20, f"{path}: {levels} grey levels: a blank grid?"


@pytest.fixture(params=BACKEND_PARAMS)
def backend_name(request):
    return request.param


@pytest.fixture
def b64(backend_name):
    """A float64 backend, for gradient checks."""
    return nn.Backend(backend_name, "float64", seed=0)


@pytest.fixture
def b32(backend_name):
    """A float32 backend, as used for training."""
    return nn.Backend(backend_name, "float32", seed=0)


@pytest.fixture(autouse=True)
def _restore_default_backend():
    """Tests that call use_backend must not leak their choice into other tests."""
    import nnscratch.backend as backend_module
    saved = backend_module._current
    yield
    backend_module._current = saved


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The checkpoint of a one-epoch quick VAE run (``cli_helpers.train``), one per test
    module (the fault tests copy or read it, never change it)."""
    from cli_helpers import train
    out = tmp_path_factory.mktemp("run")
    assert train(out, "--epochs", "1") == 0
    return out / "checkpoint.npz"
