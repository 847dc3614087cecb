r"""The workbook's exercises: what each stub asks for and how its answer is checked.

An :class:`Exercise` is one function the student writes: its name and arguments (those of
the stub and of :mod:`nnscratch.workbook.reference`), what it returns, the equation label
of each returned value (and the docs page that derives it), the inputs it is graded on, and,
for a gradient, the function whose finite differences it must match.

The inputs (:class:`Case`) are float64: random arrays of several shapes, then the edge
cases the docs discuss (logits of +-100 and beyond, a zero-variance feature, a single-row
batch, a first Adam step where the bias correction matters most). The grader
(:mod:`nnscratch.workbook.grader`) runs the student's function and the library's on each.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..activations import leaky_relu
from ..gradcheck import check_gradients
from ..models.vae import reparameterize
from . import reference as ref

#: The student's modules, in the book's order: file name -> (chapter title, docs page).
TOPICS = {
    "01_dense.py": ("The dense layer", "docs/dense.md"),
    "02_activations.py": ("Activations", "docs/activations.md"),
    "03_stabilisers.py": ("Stabilisers: dropout, batch norm, spectral norm",
                          "docs/stabilisers.md"),
    "04_losses.py": ("Losses", "docs/losses.md"),
    "05_optimizers.py": ("Optimizers", "docs/optimizers.md"),
    "06_vae.py": ("The variational autoencoder", "docs/vae.md"),
    "07_gan.py": ("The generative adversarial network", "docs/gan.md"),
}


@dataclass
class Case:
    """One input: ``args`` go to the function (student's and library's); ``extra`` holds
    what the gradient check needs besides them (the forward's own input)."""
    description: str
    args: dict
    extra: dict = field(default_factory=dict)

    def size(self):
        """Entries in all array arguments: the grader reports the smallest failing case."""
        return sum(np.size(a) for a in self.args.values() if isinstance(a, np.ndarray))


@dataclass(frozen=True)
class Exercise:
    name: str
    topic: str
    args: tuple
    outputs: tuple
    labels: dict          # output -> "dense-2" (or "adam-3, adam-4, adam-5")
    summary: str
    doc: str              # the stub's docstring after its first line
    cases: object         # rng -> list of Case
    gradient: object = None   # (case, outputs dict) -> {output: relative error}
    stable: bool = False  # an overflow or a log of 0 is a mistake, not bad luck

    @property
    def page(self):
        return TOPICS[self.topic][1]

    def signature(self):
        return f"{self.name}({', '.join(self.args)})"

    def labels_of(self, outputs):
        """The labels to re-read for the wrong ``outputs``, without repeats, in order."""
        found = {label for out in outputs for label in self.labels[out].split(", ")}
        return sorted(found, key=lambda label: (label.rsplit("-", 1)[0],
                                                int(label.rsplit("-", 1)[1])))


# -- inputs -----------------------------------------------------------------------------------
def _randn(rng, *shape, scale=1.0):
    return scale * rng.standard_normal(shape)


def _dense_cases(rng, with_dy):
    cases = []
    for B, n_in, n_out, what in ((3, 4, 2, "random"), (5, 3, 6, "random"),
                                 (1, 4, 3, "single-row batch")):
        args = {"x": _randn(rng, B, n_in), "W": _randn(rng, n_in, n_out)}
        if with_dy:
            args = {"dy": _randn(rng, B, n_out), **args}
            extra = {"b": _randn(rng, n_out)}
        else:
            args["b"], extra = _randn(rng, n_out), {}
        cases.append(Case(what, args, extra))
    return cases


def _lrelu_cases(rng):
    cases = []
    for shape, alpha, what in (((3, 4), 0.2, "random"), ((2, 5), 0.0, "random, alpha = 0 (ReLU)"),
                               ((1, 3), 0.1, "single-row batch")):
        x = _randn(rng, *shape)
        cases.append(Case(what, {"dy": _randn(rng, *shape), "y": leaky_relu(x, alpha),
                                 "alpha": alpha}, {"x": x}))
    return cases


def _sigmoid_cases(rng, backward):
    shapes = (((3, 4), 1.0, "random"), ((2, 3), 5.0, "random, large logits"),
              ((1, 4), 1.0, "single-row batch"))
    cases = []
    for shape, scale, what in shapes:
        cases.append(_sigmoid_case(rng, _randn(rng, *shape, scale=scale), what, backward))
    z = np.array([[100.0, -100.0, 800.0, -800.0]])
    cases.append(_sigmoid_case(rng, z, "logits +-100 and +-800", backward))
    return cases


def _sigmoid_case(rng, z, what, backward):
    if not backward:
        return Case(what, {"z": z})
    return Case(what, {"dy": _randn(rng, *z.shape), "y": ref.sigmoid(z)}, {"z": z})


def _bce_cases(rng):
    cases = [Case("random", {"s": _randn(rng, 3, 4, scale=3.0), "x": rng.random((3, 4))}),
             Case("random", {"s": _randn(rng, 4, 2), "x": rng.random((4, 2))}),
             Case("single-row batch", {"s": _randn(rng, 1, 5), "x": rng.random((1, 5))})]
    s = np.array([[100.0, -100.0, 100.0, -100.0, 800.0, -800.0]])
    x = np.array([[1.0, 0.0, 0.0, 1.0, 0.5, 0.5]])
    cases.append(Case("logits +-100 and +-800, targets 0, 1 and 0.5", {"s": s, "x": x}))
    return cases


def _kl_cases(rng):
    return [Case("random", {"mu": _randn(rng, 3, 2), "logvar": _randn(rng, 3, 2)}),
            Case("random", {"mu": _randn(rng, 4, 5), "logvar": _randn(rng, 4, 5)}),
            Case("single-row batch", {"mu": _randn(rng, 1, 3), "logvar": _randn(rng, 1, 3)}),
            Case("the prior itself: mu = 0, logvar = 0 (KL = 0)",
                 {"mu": np.zeros((2, 3)), "logvar": np.zeros((2, 3))}),
            Case("a variance near zero: logvar = -30",
                 {"mu": _randn(rng, 2, 2), "logvar": np.full((2, 2), -30.0)})]


def _reparam_cases(rng):
    cases = []
    for shape, what in (((3, 2), "random"), ((4, 5), "random"), ((1, 3), "single-row batch")):
        cases.append(Case(what, {"dz": _randn(rng, *shape), "eps": _randn(rng, *shape),
                                 "logvar": _randn(rng, *shape)}, {"mu": _randn(rng, *shape)}))
    return cases


def _logmeanexp_cases(rng):
    # "random, K = 3" is the smallest input: a mistake that shows everywhere (a sum for the
    # mean) is reported on it, not on the +-1000 cases, which point at stability
    return [Case("random", {"a": _randn(rng, 5, 3, scale=10.0)}),
            Case("K = 1", {"a": _randn(rng, 1, 4)}),
            Case("random, K = 3", {"a": _randn(rng, 3, 2)}),
            Case("log-weights near -1000 (a real image's log p(x|z))",
                 {"a": -1000.0 + _randn(rng, 4, 2)}),
            Case("log-weights near +1000", {"a": 1000.0 + _randn(rng, 4, 2)})]


ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


def _adam_cases(rng):
    def case(what, shape, t, g=None, m=None, v=None):
        g = _randn(rng, *shape) if g is None else g
        m = np.zeros(shape) if m is None else m
        v = np.zeros(shape) if v is None else v
        return Case(what, {"theta": _randn(rng, *shape), "g": g, "m": m, "v": v, "t": t, **ADAM})
    return [case("first step (t = 1), where the bias correction matters most", (3, 4), 1),
            case("third step (t = 3), moments from earlier steps", (2, 3), 3,
                 m=_randn(rng, 2, 3, scale=0.1), v=rng.random((2, 3)) * 0.01),
            case("step t = 1000", (4,), 1000, m=_randn(rng, 4, scale=0.1),
                 v=rng.random(4) * 0.01),
            case("a zero gradient on the first step (eps decides)", (1, 3), 1,
                 g=np.array([[0.0, 1.0, -2.0]]))]


def _sgd_cases(rng):
    return [Case("momentum 0.9", {"theta": _randn(rng, 3, 4), "g": _randn(rng, 3, 4),
                                  "v": _randn(rng, 3, 4), "lr": 0.1, "momentum": 0.9}),
            Case("momentum 0 (plain SGD)", {"theta": _randn(rng, 2, 3), "g": _randn(rng, 2, 3),
                                            "v": np.zeros((2, 3)), "lr": 0.05, "momentum": 0.0}),
            Case("single row", {"theta": _randn(rng, 1, 2), "g": _randn(rng, 1, 2),
                                "v": _randn(rng, 1, 2), "lr": 0.01, "momentum": 0.5})]


def _dropout_cases(rng, backward):
    cases = []
    for shape, p, what in (((3, 4), 0.5, "random, p = 0.5"), ((4, 2), 0.2, "random, p = 0.2"),
                           ((1, 5), 0.5, "single-row batch"), ((2, 3), 0.0, "p = 0 (no dropout)")):
        mask = (rng.random(shape) >= p).astype(np.float64)
        x = _randn(rng, *shape)
        if backward:
            cases.append(Case(what, {"dy": _randn(rng, *shape), "mask": mask, "p": p}, {"x": x}))
        else:
            cases.append(Case(what, {"x": x, "mask": mask, "p": p}))
    return cases


def _bn_cases(rng):
    cases = []
    for B, n, what in ((4, 3, "random"), (6, 2, "random"), (2, 3, "a batch of two")):
        cases.append(_bn_case(rng, _randn(rng, B, n), what))
    x = _randn(rng, 5, 3)
    x[:, 1] = 0.7                                  # one feature constant over the batch
    cases.append(_bn_case(rng, x, "a zero-variance feature (column 1 constant)"))
    return cases


def _bn_case(rng, x, what):
    n = x.shape[1]
    gamma, beta = 1.0 + _randn(rng, n, scale=0.5), _randn(rng, n)
    x_hat, inv_std = _bn_forward(x, gamma, beta)[1:]
    return Case(what, {"dy": _randn(rng, *x.shape), "x_hat": x_hat, "inv_std": inv_std,
                       "gamma": gamma}, {"x": x, "beta": beta})


def _bn_forward(x, gamma, beta):
    """The library's batch norm in training mode: ``(y, x_hat, inv_std)``."""
    layer = ref.BatchNorm1d(x.shape[1], backend=ref._backend())
    layer.params["gamma"], layer.params["beta"] = gamma, beta
    y = layer.forward(x)
    x_hat, inv_std, _ = layer._cache
    return y, x_hat.copy(), np.array(inv_std)


def _sn_layer(W, u):
    layer = ref.SpectralNormDense(*W.shape, backend=ref._backend()).eval()
    layer.params["W"], layer.params["b"] = W, np.zeros(W.shape[1])
    layer._buffers["u"] = u
    return layer


def _sn_cases(rng):
    cases = []
    for B, n_in, n_out, what in ((3, 4, 2, "random"), (2, 3, 5, "random"),
                                 (1, 4, 3, "single-row batch")):
        x, W, u = _randn(rng, B, n_in), _randn(rng, n_in, n_out), _randn(rng, n_in)
        u /= np.linalg.norm(u)
        _, v, sigma = _sn_layer(W, u).sigma()
        cases.append(Case(what, {"dy": _randn(rng, B, n_out), "x": x, "W": W, "u": u, "v": v,
                                 "sigma": float(sigma)}))
    return cases


def _gan_cases(rng, discriminator):
    def logits(*values):
        return np.array(values, dtype=np.float64)[:, None]
    random = [(_randn(rng, 4, 1, scale=2.0), _randn(rng, 4, 1, scale=2.0), "random"),
              (_randn(rng, 1, 1), _randn(rng, 1, 1), "a single pair")]
    edge = (logits(100.0, -100.0, 800.0), logits(-100.0, 100.0, -800.0),
            "logits +-100 and +-800 (confident, right and wrong)")
    cases = []
    for s_real, s_fake, what in (*random, edge):
        args = {"s_real": s_real, "s_fake": s_fake} if discriminator else {"s_fake": s_fake}
        cases.append(Case(what, args))
    return cases


# -- gradient checks: the student's gradient against finite differences of the library's ----
def _check(f, wrt, outputs):
    """Relative errors (eq. gradcheck-3) of the student's ``outputs[name]`` against central
    differences of ``f`` with respect to ``wrt[name]``, each a float64 array."""
    arrays = {name: np.array(a, dtype=np.float64) for name, a in wrt.items()}
    analytic = {name: np.asarray(outputs[name], dtype=np.float64) for name in wrt}
    return check_gradients(lambda: f(**arrays), arrays, analytic)


def _grad_dense(case, out):
    dy, b = case.args["dy"], case.extra["b"]
    return _check(lambda dx, dW, db: np.sum(dy * ref.dense_forward(dx, dW, b + db)),
                  {"dx": case.args["x"], "dW": case.args["W"], "db": np.zeros_like(b)}, out)


def _grad_lrelu(case, out):
    dy, alpha = case.args["dy"], case.args["alpha"]
    return _check(lambda dx: np.sum(dy * leaky_relu(dx, alpha)), {"dx": case.extra["x"]}, out)


def _grad_sigmoid(case, out):
    dy = case.args["dy"]
    return _check(lambda dx: np.sum(dy * ref.sigmoid(dx)), {"dx": case.extra["z"]}, out)


def _grad_bce(case, out):
    x = case.args["x"]
    return _check(lambda ds: ref.bce_with_logits(ds, x)[0], {"ds": case.args["s"]}, out)


def _grad_kl(case, out):
    return _check(lambda dmu, dlogvar: ref.kl_normal(dmu, dlogvar)[0],
                  {"dmu": case.args["mu"], "dlogvar": case.args["logvar"]}, out)


def _grad_reparam(case, out):
    dz, eps = case.args["dz"], case.args["eps"]
    return _check(lambda dmu, dlogvar: np.sum(dz * reparameterize(dmu, dlogvar, eps)[0]),
                  {"dmu": case.extra["mu"], "dlogvar": case.args["logvar"]}, out)


def _grad_dropout(case, out):
    dy, mask, p = case.args["dy"], case.args["mask"], case.args["p"]
    return _check(lambda dx: np.sum(dy * ref.dropout_forward(dx, mask, p)),
                  {"dx": case.extra["x"]}, out)


def _grad_bn(case, out):
    dy, gamma = case.args["dy"], case.args["gamma"]
    return _check(lambda dx, dgamma, dbeta: np.sum(dy * _bn_forward(dx, dgamma, dbeta)[0]),
                  {"dx": case.extra["x"], "dgamma": gamma, "dbeta": case.extra["beta"]}, out)


def _grad_sn(case, out):
    dy, u = case.args["dy"], case.args["u"]
    return _check(lambda dx, dW: np.sum(dy * _sn_layer(dW, u).forward(dx)),
                  {"dx": case.args["x"], "dW": case.args["W"]}, out)


def _grad_d_loss(case, out):
    return _check(lambda ds_real, ds_fake: ref.discriminator_loss(ds_real, ds_fake)[0],
                  {"ds_real": case.args["s_real"], "ds_fake": case.args["s_fake"]}, out)


def _grad_g_loss(case, out):
    return _check(lambda ds: ref.generator_loss(ds)[0], {"ds": case.args["s_fake"]}, out)


# -- the catalogue, in the book's order -----------------------------------------------------
EXERCISES = [
    Exercise("dense_forward", "01_dense.py", ("x", "W", "b"), ("y",), {"y": "dense-1"},
             "the dense layer's forward, y = xW + b",
             """Shapes: x (batch, n_in), W (n_in, n_out), b (n_out,) -> y (batch, n_out).

    Eq. (dense-1):  y = x W + b   (b is added to every row)""",
             lambda rng: _dense_cases(rng, with_dy=False)),
    Exercise("dense_backward", "01_dense.py", ("dy", "x", "W"), ("dx", "dW", "db"),
             {"dx": "dense-4", "dW": "dense-2", "db": "dense-3"},
             "the dense layer's backward: dx, dW, db",
             """The forward was y = x W + b, eq. (dense-1). Given dy = dL/dy (batch, n_out),
    the input x (batch, n_in) that the forward cached and the weights W (n_in, n_out),
    return (dx, dW, db) = (dL/dx, dL/dW, dL/db), each of the shape of x, W and b:
    eqs. (dense-2) to (dense-4), derived in the chapter.""",
             lambda rng: _dense_cases(rng, with_dy=True), _grad_dense),
    Exercise("leaky_relu_backward", "02_activations.py", ("dy", "y", "alpha"), ("dx",),
             {"dx": "lrelu-2"}, "the leaky ReLU's backward (alpha = 0: the ReLU's)",
             """The forward was y = x where x > 0 and alpha x elsewhere, eq. (lrelu-1), with
    0 <= alpha < 1. Given dy = dL/dy (batch, n) and the forward's output y (batch, n) (it
    cached y, not x: y > 0 exactly where x > 0), return dx = dL/dx (batch, n).""",
             _lrelu_cases, _grad_lrelu),
    Exercise("sigmoid_backward", "02_activations.py", ("dy", "y"), ("dx",),
             {"dx": "sigmoid-2"}, "the sigmoid's backward, from its output",
             """The forward was y = sigmoid(x) = 1 / (1 + exp(-x)), eq. (sigmoid-1). Given
    dy = dL/dy (batch, n) and the forward's output y (batch, n), return dx = dL/dx
    (batch, n), written with y only (the forward cached y, not x).""",
             lambda rng: _sigmoid_cases(rng, backward=True), _grad_sigmoid),
    Exercise("sigmoid", "02_activations.py", ("z",), ("y",), {"y": "sigmoid-1"},
             "the numerically stable sigmoid",
             """z (any shape) -> y = 1 / (1 + exp(-z)) of the same shape, eq. (sigmoid-1),
    for logits of any size: exp of a large positive number overflows (z = -800 must not
    even warn). Find a form that never exponentiates a positive number.""",
             lambda rng: _sigmoid_cases(rng, backward=False), stable=True),
    Exercise("dropout_forward", "03_stabilisers.py", ("x", "mask", "p"), ("y",),
             {"y": "drop-1"}, "inverted dropout's forward, given the mask",
             """x (batch, n); mask (batch, n) of 0 (drop) and 1 (keep), drawn with
    P(keep) = 1 - p; p the drop probability in [0, 1). Return y (batch, n).

    Eq. (drop-1):  y = mask * x / (1 - p)""",
             lambda rng: _dropout_cases(rng, backward=False)),
    Exercise("dropout_backward", "03_stabilisers.py", ("dy", "mask", "p"), ("dx",),
             {"dx": "drop-2"}, "inverted dropout's backward",
             """The forward was y = mask * x / (1 - p), eq. (drop-1). Given dy = dL/dy
    (batch, n), the forward's mask (batch, n) of 0 and 1, and p, return dx = dL/dx.""",
             lambda rng: _dropout_cases(rng, backward=True), _grad_dropout),
    Exercise("batchnorm_backward", "03_stabilisers.py", ("dy", "x_hat", "inv_std", "gamma"),
             ("dx", "dgamma", "dbeta"), {"dx": "bn-7", "dgamma": "bn-6", "dbeta": "bn-5"},
             "batch norm's backward in training mode",
             """The forward (training mode, eqs. (bn-1), (bn-2)) normalised each feature over
    the batch: x_hat = (x - mean) * inv_std, inv_std = 1 / sqrt(var + eps), var the
    batch's variance (divided by B, not B - 1); then y = gamma * x_hat + beta. Given
    dy (B, n), x_hat (B, n), inv_std (n,) and gamma (n,), return (dx, dgamma, dbeta), the
    gradients of L with respect to x (B, n), gamma (n,) and beta (n,): eqs. (bn-5) to
    (bn-7). The mean and the variance are computed from every
    row, so each x[i] reaches L through every row's x_hat: that is the whole exercise.""",
             _bn_cases, _grad_bn),
    Exercise("spectral_norm_backward", "03_stabilisers.py", ("dy", "x", "W", "u", "v", "sigma"),
             ("dx", "dW"), {"dx": "sn-7", "dW": "sn-5, sn-6"},
             "spectral normalisation's backward, with u and v held fixed",
             """The forward computed y = x W / sigma + b with sigma = u^T W v, u (n_in,) and
    v (n_out,) unit vectors from the power iteration, held fixed in the backward. Given
    dy (batch, n_out), x (batch, n_in), W (n_in, n_out), u, v and the float sigma, return
    (dx, dW) = (dL/dx, dL/dW): eqs. (sn-5) to (sn-7). sigma depends on W too, with
    d sigma / dW = outer(u, v) when u and v are held fixed: do not forget that path.""",
             _sn_cases, _grad_sn),
    Exercise("bce_with_logits", "04_losses.py", ("s", "x"), ("L", "ds"),
             {"L": "bce-1", "ds": "bce-2"}, "binary cross-entropy from logits, value and gradient",
             """Logits s (B, d), targets x (B, d) in [0, 1], p = sigmoid(s). Return (L, ds):
    L = (1/B) sum of -x log p - (1 - x) log(1 - p) (a number: sum over the features, mean
    over the batch), eq. (bce-1), and ds = dL/ds (B, d), eq. (bce-2). Stable for logits of
    any size (+-800 included): never exponentiate a positive number, never take log(0).""",
             _bce_cases, _grad_bce, stable=True),
    Exercise("kl_normal", "04_losses.py", ("mu", "logvar"), ("L", "dmu", "dlogvar"),
             {"L": "kl-1", "dmu": "kl-2", "dlogvar": "kl-3"},
             "the Gaussian KL from the prior and its gradients",
             """KL( N(mu, diag(exp(logvar))) || N(0, I) ), mu and logvar (B, latent). Return
    (L, dmu, dlogvar): L a number (sum over the latent units, mean over the batch), the
    gradients (B, latent).
    The variance is exp(logvar), the standard deviation exp(logvar / 2). L is eq. (kl-1)
    (derive it from the two densities, or read it), the gradients eqs. (kl-2), (kl-3).""",
             _kl_cases, _grad_kl),
    Exercise("adam_step", "05_optimizers.py",
             ("theta", "g", "m", "v", "t", "lr", "beta1", "beta2", "eps"), ("theta", "m", "v"),
             {"theta": "adam-3, adam-4, adam-5", "m": "adam-1", "v": "adam-2"},
             "one step of Adam with bias correction (Kingma and Ba, Algorithm 1)",
             """Parameters theta, gradient g, moments m and v: arrays of one shape; t the
    number of this step, from 1. Return the new (theta, m, v) (new arrays, or the same ones
    updated in place): Kingma and Ba's Algorithm 1, eqs. (adam-1) to (adam-5): moving
    averages of g and g^2, their bias corrections for step t, then the step, with eps
    added to the square root.""",
             _adam_cases),
    Exercise("sgd_momentum_step", "05_optimizers.py", ("theta", "g", "v", "lr", "momentum"),
             ("theta", "v"), {"theta": "sgd-2", "v": "sgd-1"}, "one step of SGD with momentum",
             """Parameters theta, gradient g and velocity v of one shape. Return the new
    (theta, v) of heavy-ball momentum: the velocity first, eq. (sgd-1), then the step
    along it, eq. (sgd-2). The velocity is a running sum of gradients, without lr (the
    chapter's form, PyTorch's; not v <- momentum * v - lr * g, theta <- theta + v).""",
             _sgd_cases),
    Exercise("reparameterize_backward", "06_vae.py", ("dz", "eps", "logvar"), ("dmu", "dlogvar"),
             {"dmu": "vae-5", "dlogvar": "vae-6"},
             "the reparameterisation's backward",
             """The forward drew z = mu + exp(logvar / 2) * eps. Given dz = dL/dz (B, latent),
    the noise eps (B, latent) and logvar (B, latent), return the gradients (dmu, dlogvar)
    that reach mu and logvar through z (the KL's own gradients are added elsewhere):
    eqs. (vae-5), (vae-6) without their KL terms.""",
             _reparam_cases, _grad_reparam),
    Exercise("logmeanexp", "06_vae.py", ("a",), ("L",), {"L": "vae-8"},
             "the stable log-mean-exp of the IWAE bound",
             """a (K, B): K log-weights log w_k per example. Return (B,): log((1/K) sum_k
    exp(a_k)), eq. (vae-8), without overflow or log(0) for log-weights of -1000 or +1000
    (a real image's log p(x|z) is about -1000 nats: exp of it is 0 in float64).""",
             _logmeanexp_cases, stable=True),
    Exercise("discriminator_loss", "07_gan.py", ("s_real", "s_fake"),
             ("L", "ds_real", "ds_fake"), {"L": "gan-1", "ds_real": "gan-2", "ds_fake": "gan-2"},
             "the discriminator's loss and its gradients",
             """Logits s_real (n, 1) of real and s_fake (n, 1) of generated examples. Return
    (L_D, ds_real, ds_fake), stable for logits of any size:
    L_D = -(1/n) sum of [log sigmoid(s_real) + log(1 - sigmoid(s_fake))], eq. (gan-1)
    (no label smoothing), and its gradients with respect to both logits, eq. (gan-2).""",
             lambda rng: _gan_cases(rng, discriminator=True), _grad_d_loss, stable=True),
    Exercise("generator_loss", "07_gan.py", ("s_fake",), ("L", "ds"),
             {"L": "gan-3", "ds": "gan-4"},
             "the non-saturating generator loss and its gradient",
             """Logits s_fake (n, 1) of generated examples under the discriminator. Return
    (L_G, ds), stable for logits of any size: L_G = -(1/n) sum of log sigmoid(s_fake),
    eq. (gan-3), and ds = dL_G/ds_fake, eq. (gan-4).""",
             lambda rng: _gan_cases(rng, discriminator=False), _grad_g_loss, stable=True),
]

BY_NAME = {e.name: e for e in EXERCISES}


# -- the student's files ------------------------------------------------------------------------
HEADER = '''"""Workbook, chapter {number}: {title} ({page}).

Write each function below in place of its ``raise NotImplementedError``, with NumPy
(``np``) only. The grader calls it with float64 arrays; training calls it with float32
ones (keep their dtype: ``0.5 * a``, not ``np.float64(0.5) * a``).

Grade this chapter:  nnscratch workbook check DIR {stem}    (DIR: this folder)
Train with it:       {train}    (uses what is graded right)
"""
import numpy as np
'''


#: The run that calls a chapter's functions where the VAE does not (it has no stabilisers
#: and no GAN losses): the GAN's default recipe uses batch and spectral norm.
TRAIN = {"03_stabilisers.py": "nnscratch train gan --workbook DIR --d-dropout 0.3",
         "07_gan.py": "nnscratch train gan --workbook DIR"}


def cite(labels):
    """``"eq. (dense-1)"`` or ``"eqs. (dense-2), (dense-3)"``."""
    return ("eq. " if len(labels) == 1 else "eqs. ") + ", ".join(f"({x})" for x in labels)


def stub_source(topic):
    """The text of the student's file ``topic`` (``"01_dense.py"``): a header, then one
    stub per exercise with its signature, shapes, equations and labels."""
    title, page = TOPICS[topic]
    text = HEADER.format(number=int(topic[:2]), title=title, page=page, stem=topic[:-3],
                         train=TRAIN.get(topic, "nnscratch train vae --workbook DIR"))
    for e in EXERCISES:
        if e.topic != topic:
            continue
        text += (f'\n\ndef {e.signature()}:\n    """{e.summary[0].upper()}{e.summary[1:]}.\n\n'
                 f'    {e.doc}\n\n    Read {cite(e.labels_of(e.outputs))} in {page}.\n    """\n'
                 f'    raise NotImplementedError("{e.name}: not written yet")\n')
    return text


def start(directory):
    """Write the workbook's files into ``directory`` (created if needed), never replacing a
    file that exists. Returns ``(written, kept)``, lists of file names."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise FileExistsError(f"{directory!r} exists and is not a directory")
    os.makedirs(directory, exist_ok=True)
    written, kept = [], []
    for topic in TOPICS:
        path = os.path.join(directory, topic)
        try:
            with open(path, "x", encoding="utf-8") as f:        # "x": never overwrite
                f.write(stub_source(topic))
            written.append(topic)
        except FileExistsError:
            kept.append(topic)
    return written, kept
