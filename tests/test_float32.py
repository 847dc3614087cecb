"""float32 stays float32: no layer, loss or optimizer upcasts silently to float64.

A float64 intermediate doubles the memory traffic of every pass and, once it reaches a
parameter, the cost of every step after it. The usual culprits are NumPy scalars
(``np.float64(0.2) * x`` is float64 under NumPy 2's promotion rules, while the Python
float ``0.2 * x`` keeps x's dtype), float64 random draws and ``astype`` calls, so the
hyperparameters below are passed as NumPy float64 scalars on purpose.
"""
import numpy as np
import pytest

import nnscratch as nn


def assert_float32(b, **arrays):
    wrong = {k: str(a.dtype) for k, a in arrays.items() if a.dtype != b.dtype}
    assert not wrong, f"not float32: {wrong}"


LAYERS = {
    "dense-he": lambda b: nn.Dense(6, 5, init="he", alpha=np.float64(0.2), backend=b),
    "dense-glorot": lambda b: nn.Dense(6, 5, init="glorot", backend=b),
    "dense-pytorch": lambda b: nn.Dense(6, 5, init="pytorch", backend=b),
    "relu": lambda b: nn.ReLU(backend=b),
    "lrelu": lambda b: nn.LeakyReLU(np.float64(0.2), backend=b),
    "lrelu0": lambda b: nn.LeakyReLU(0.0, backend=b),
    "sigmoid": lambda b: nn.Sigmoid(backend=b),
    "tanh": lambda b: nn.Tanh(backend=b),
    "identity": lambda b: nn.Identity(backend=b),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_forward_backward_and_grads(b32, name):
    layer = LAYERS[name](b32)
    x = b32.normal((4, 6))
    y = layer.forward(x)
    dx = layer.backward(b32.normal(tuple(y.shape)))
    assert_float32(b32, y=y, dx=dx, **{f"param {k}": p for k, p in layer.params.items()},
                   **{f"grad {k}": g for k, g in layer.grads.items()})


def test_sigmoid_function(b32):
    assert_float32(b32, sigmoid=nn.sigmoid(b32.normal((3, 4)) * 30.0))


def test_losses_values_and_gradients(b32):
    s, x = b32.normal((4, 5)), b32.uniform((4, 5))
    labels = b32.asarray(np.array([0, 4, 2, 1]), dtype=b32.xp.int64)
    L1, ds1 = nn.bce_with_logits(s, x)
    L2, dp = nn.bce(nn.sigmoid(s), x)
    L3, dy = nn.mse(s, x)
    L4, (dmu, dlogvar) = nn.kl_normal(s, b32.normal((4, 5)))
    L5, ds5 = nn.softmax_cross_entropy(s, labels)
    assert_float32(b32, L1=L1, ds1=ds1, L2=L2, dp=dp, L3=L3, dy=dy, L4=L4, dmu=dmu,
                   dlogvar=dlogvar, L5=L5, ds5=ds5, log_softmax=nn.log_softmax(s))


def train(b, opt_factory, steps=3):
    net = nn.Sequential(nn.Dense(5, 70, backend=b), nn.LeakyReLU(0.2, backend=b),
                        nn.Dense(70, 3, backend=b), nn.Sigmoid(backend=b))
    opt = opt_factory(net)
    before = {k: id(p) for k, p in net.params.items()}
    for _ in range(steps):
        _, dy = nn.mse(net.forward(b.normal((8, 5))), b.uniform((8, 3)))
        net.backward(dy)
        opt.step()
    # in place: the optimizer never replaces a parameter array
    assert {k: id(p) for k, p in net.params.items()} == before
    return net, opt


@pytest.mark.parametrize("make", [
    lambda net: nn.Adam(net, lr=np.float64(1e-3), betas=(np.float64(0.5), np.float64(0.999)),
                        eps=np.float64(1e-8)),
    lambda net: nn.Adam(net, lr=np.float64(1e-3), weight_decay=np.float64(0.01)),
    lambda net: nn.SGD(net, lr=np.float64(0.1), momentum=np.float64(0.9)),
], ids=["adam", "adamw", "sgd-momentum"])
def test_optimizer_parameters_and_state(b32, make):
    net, opt = train(b32, make)
    state = {f"{slot} {key}": a for key, slots in opt.state.items() for slot, a in slots.items()}
    assert_float32(b32, **{f"param {k}": p for k, p in net.params.items()}, **state)


def test_adam_in_blocks_equals_adam_in_one_piece(b32):
    """The blocked update is the same elementwise arithmetic: bitwise equal results."""
    b_one = nn.Backend(b32.name, "float32", seed=0)
    b_blocks = nn.Backend(b32.name, "float32", seed=0)

    def one_piece(net):
        opt = nn.Adam(net, lr=1e-2, weight_decay=0.1)
        opt.block_size = 10 ** 9
        return opt

    def blocks(net):
        opt = nn.Adam(net, lr=1e-2, weight_decay=0.1)
        opt.block_size = 64        # a 70-wide W and a 70-long b: one row per block, 2 blocks of b
        return opt

    net_a, _ = train(b_one, one_piece)
    net_b, _ = train(b_blocks, blocks)
    for k in net_a.params:
        np.testing.assert_array_equal(nn.to_numpy(net_a.params[k]), nn.to_numpy(net_b.params[k]))


def test_row_blocks_cover_every_row_once():
    b = nn.Backend("numpy")
    for shape, size in [((10, 3), 7), ((5,), 2), ((1, 4096), 100), ((3, 2), 10 ** 6)]:
        rows = []
        for index in b.row_blocks(shape, size):
            rows += list(range(shape[0]))[index[0]]
        assert rows == list(range(shape[0]))


# -- every intermediate, not only the results ----------------------------------------------
class Float32Only(np.ndarray):
    """A NumPy array that raises as soon as an operation on it yields a float64 array.

    In-place updates (``p -= step``) cast back to float32 silently, so checking the
    parameters after a step cannot see a float64 temporary; this catches it where it is made.
    """

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(_plain(a) for a in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(_plain(a) for a in kwargs["out"])
        return _checked(getattr(ufunc, method)(*inputs, **kwargs), ufunc.__name__)

    def __array_function__(self, func, types, args, kwargs):
        return _checked(super().__array_function__(func, types, args, kwargs), func.__name__)


def _plain(a):
    return a.view(np.ndarray) if isinstance(a, Float32Only) else a


def _checked(result, name):
    for r in result if isinstance(result, tuple) else (result,):
        if getattr(r, "dtype", None) == np.float64:
            raise AssertionError(f"{name} produced float64")
    if isinstance(result, np.ndarray) and not isinstance(result, Float32Only):
        return result.view(Float32Only)
    return result


def guard(module):
    """Replace every parameter of ``module`` (and its sublayers) by a Float32Only view."""
    for layer in getattr(module, "layers", [module]):
        for k, p in layer._params.items():
            layer._params[k] = p.view(Float32Only)
    return module


def test_the_guard_catches_a_numpy_scalar():
    x = np.ones(3, np.float32).view(Float32Only)
    with pytest.raises(AssertionError, match="multiply produced float64"):
        np.float64(0.5) * x
    assert (0.5 * x).dtype == np.float32


@pytest.mark.parametrize("make_opt", [
    lambda net: nn.Adam(net, lr=1e-3, betas=(0.5, 0.999), weight_decay=1e-2),
    lambda net: nn.SGD(net, lr=0.1, momentum=0.9),
], ids=["adamw", "sgd-momentum"])
def test_no_float64_intermediate_in_training_steps(make_opt):
    b = nn.Backend("numpy", "float32", seed=0)
    net = guard(nn.Sequential(
        nn.Dense(6, 70, alpha=0.2, backend=b), nn.LeakyReLU(0.2, backend=b),
        nn.Dense(70, 8, backend=b), nn.ReLU(backend=b), nn.Dense(8, 8, backend=b),
        nn.Tanh(backend=b), nn.Dense(8, 4, init="glorot", backend=b)))
    opt = make_opt(net)
    opt.block_size = 64
    x, t = b.normal((5, 6)).view(Float32Only), b.uniform((5, 4)).view(Float32Only)
    losses = [
        lambda s: nn.bce_with_logits(s, t),
        lambda s: nn.mse(s, t),
        lambda s: nn.bce(nn.sigmoid(s), t),
        lambda s: (lambda L, d: (L, d[0] + d[1]))(*nn.kl_normal(s, t)),
        lambda s: nn.softmax_cross_entropy(s, b.asarray(np.array([0, 1, 2, 3, 0]),
                                                        dtype=np.int64)),
    ]
    for loss in losses:
        L, ds = loss(net.forward(x))
        net.backward(ds)
        opt.step()
        float(L)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log1p_is_as_accurate_as_the_library_one(dtype):
    """losses.log1p (built on log, which NumPy vectorises) against float64 log1p: a few ulps."""
    from nnscratch.losses import log1p
    e = np.concatenate([np.exp(-np.linspace(0.0, 100.0, 20001)), [0.0, 1e-30, 1e-10, 3.0]])
    e = e.astype(dtype)
    exact = np.log1p(e.astype(np.float64))
    got = log1p(e)
    assert got.dtype == np.dtype(dtype)
    ulps = np.abs(got - exact) / np.maximum(exact, np.finfo(dtype).tiny) / np.finfo(dtype).eps
    assert ulps.max() < 3
