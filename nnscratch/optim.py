r"""Optimizers: SGD with momentum and Adam (Kingma & Ba, 2015, Algorithm 1), with AdamW's
decoupled weight decay as an option.

An optimizer is given a module and reads its ``params`` and ``grads`` on every ``step``;
``backward`` only computes gradients, ``step`` alone changes parameters, in place, so the
arrays keep their identity. Per-parameter state (momentum, moments) is keyed by that
identity (``id(param)``), never by name, so two networks sharing one optimizer cannot
collide. ``state_dict`` converts it to names only for saving.
"""
from __future__ import annotations

import numpy as np

from .backend import namespace, to_numpy
from .fused import elementwise
from .module import finite_float


def adam_step(theta, g, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    r"""One step of Adam, Kingma & Ba (2015), Algorithm 1, eqs. (adam-1) to (adam-5), as
    written in the paper: the reference that :class:`Adam` computes in place.

    ``theta``, ``g`` (its gradient), ``m``, ``v``: arrays of one shape; ``t``: this step's
    number, from 1. Returns the new ``(theta, m, v)``; nothing is changed in place.
    """
    m = beta1 * m + (1 - beta1) * g                              # eq. (adam-1)
    v = beta2 * v + (1 - beta2) * g * g                          # eq. (adam-2)
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)    # eqs. (adam-3), (adam-4)
    theta = theta - lr * m_hat / (v_hat ** 0.5 + eps)            # eq. (adam-5)
    return theta, m, v


class Optimizer:
    """Base class: holds the module, the learning rate, a step counter and the state."""

    #: Elements per block of an update (see :meth:`step`): 64 Ki float32 = 256 KiB per array.
    block_size = 1 << 16

    def __init__(self, module, lr):
        self.module = module
        self.lr = finite_float(type(self).__name__, "the learning rate lr", lr, 0.0,
                               low_open=True)
        self.t = 0
        self.state = {}          # id(param) -> {"m": array, ...}

    def step(self):
        """Apply one update to every parameter from the gradients of the last backward.

        How the updates are made fast, in one place. ``_update`` changes the parameter and
        its state *in place* (``m *= b1`` rather than ``m = b1 * m``), so no array is
        allocated per step, and it runs on blocks of about ``block_size`` elements
        (consecutive rows), on views. Why blocks: every line of an update rule is a pass over
        its arrays; on a whole 8-million-entry matrix each pass streams it from main memory
        again, on a block the later passes find it in the cache. (Spreading the blocks over a
        thread pool was measured too: no faster on a 2-core machine, so no.) On CuPy each
        line would be one kernel launch, so the whole array is one block and Adam's update
        is one CUDA kernel per parameter (:func:`adam_update`, through
        :mod:`nnscratch.fused`). Both compute what the readable :func:`adam_step` computes,
        to float32 rounding (tested).
        """
        params, grads = self.module.params, self.module.grads
        missing = [name for name in params if name not in grads]
        if missing:
            raise RuntimeError(f"{type(self).__name__}.step: no gradient for {missing[:3]}: "
                               "call backward (with param_grads=True) before step")
        self.t += 1
        backend = self.module.backend
        for name, p in params.items():
            state = self.state.get(id(p))
            if state is None:
                state = self.state[id(p)] = self._init_state(p)
            g = grads[name]
            blocks = backend.row_blocks(p.shape, self.block_size)
            if len(blocks) == 1:          # the whole array (always on CuPy): no views to make
                self._update(p, g, state)
                continue
            for rows in blocks:
                self._update(p[rows], g[rows], {k: a[rows] for k, a in state.items()})

    def _init_state(self, p):
        return {}

    def _update(self, p, g, state):
        raise NotImplementedError

    # -- saving, restoring, moving --------------------------------------------------
    def _names(self):
        return {id(p): name for name, p in self.module.params.items()}

    def state_dict(self):
        """Host copies of the state, keyed ``"<slot>/<param name>"``, plus the step count."""
        out = {"t": np.asarray(self.t)}
        names = self._names()
        for key, state in self.state.items():
            for slot, a in state.items():
                out[f"{slot}/{names[key]}"] = to_numpy(a).copy()
        return out

    def load_state_dict(self, state):
        self.t = int(state["t"])
        backend = self.module.backend
        self.state = {}
        for name, p in self.module.params.items():
            slots = {k.split("/", 1)[0]: v for k, v in state.items()
                     if "/" in k and k.split("/", 1)[1] == name}
            if slots:
                self.state[id(p)] = {k: backend.asarray(v, dtype=p.dtype) for k, v in slots.items()}

    def to(self, backend):
        """Move the module (parameters, gradients) and this optimizer's state together."""
        saved = self.state_dict()
        self.module.to(backend)
        self.load_state_dict(saved)
        return self


class SGD(Optimizer):
    r"""Stochastic gradient descent with (heavy-ball) momentum, eqs. (sgd-1), (sgd-2).

    .. math:: \bar g \leftarrow \mu \bar g + g, \qquad \theta \leftarrow \theta - \eta \bar g

    :math:`\bar g` (the velocity, state ``"v"``), :math:`\mu` = ``momentum``, :math:`\eta` =
    ``lr``. With ``momentum=0`` this is plain :math:`\theta \leftarrow \theta - \eta g`.
    """

    def __init__(self, module, lr=0.01, momentum=0.0):
        super().__init__(module, lr)
        self.momentum = finite_float("SGD", "momentum", momentum, 0.0, 1.0, high_open=True)

    def _init_state(self, p):
        return {"v": self.module.backend.zeros_like(p)} if self.momentum else {}

    def _update(self, p, g, state):
        if self.momentum:
            v = state["v"]
            v *= self.momentum                                   # eq. (sgd-1)
            v += g
            g = v
        p -= self.lr * g                                         # eq. (sgd-2)


class Adam(Optimizer):
    r"""Adam, Kingma & Ba (2015), Algorithm 1, eqs. (adam-1) to (adam-5):

    .. math::
        t &\leftarrow t + 1 \\
        m &\leftarrow \beta_1 m + (1 - \beta_1) g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
        \hat m &= m / (1 - \beta_1^t), \qquad \hat v = v / (1 - \beta_2^t) \\
        \theta &\leftarrow \theta - \alpha\, \hat m / (\sqrt{\hat v} + \epsilon)

    ``weight_decay`` > 0 adds AdamW's decoupled decay (Loshchilov & Hutter, 2019) before the
    Adam step, eq. (adam-6): :math:`\theta \leftarrow \theta - \alpha \lambda \theta`. It is
    not an L2 term in the gradient, so it does not pass through the moment estimates. The
    decay is scaled by the learning rate :math:`\alpha`, as in PyTorch's ``AdamW``; in
    Loshchilov & Hutter's Algorithm 2 it is scaled by the schedule multiplier instead, so
    their :math:`\lambda` is this ``weight_decay`` times ``lr``.
    """

    def __init__(self, module, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(module, lr)
        if len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        self.beta1, self.beta2 = (finite_float("Adam", f"betas[{i}]", b, 0.0, 1.0, high_open=True)
                                  for i, b in enumerate(betas))
        # eps > 0 keeps the step finite where v_hat = 0 (a parameter whose gradient is 0)
        self.eps = finite_float("Adam", "eps", eps, 0.0, low_open=True)
        self.weight_decay = finite_float("Adam", "weight_decay", weight_decay, 0.0)

    def _init_state(self, p):
        zeros = self.module.backend.zeros_like
        return {"m": zeros(p), "v": zeros(p)}

    def _update(self, p, g, state):
        """One Adam step of parameter ``p`` with gradient ``g``, in place: eqs. (adam-1) to
        (adam-5), and (adam-6) when ``weight_decay`` is set; :func:`adam_step` is the same
        step written as in the paper (see :meth:`Optimizer.step` for why in place)."""
        b1, b2, t = self.beta1, self.beta2, self.t
        c1 = 1.0 - b1 ** t                                       # m_hat = m / c1, eq. (adam-3)
        c2 = 1.0 - b2 ** t                                       # v_hat = v / c2, eq. (adam-4)
        decay = 1.0 - self.lr * self.weight_decay                # eq. (adam-6)
        adam_update(g, b1, b2, self.lr / c1, c2, self.eps, decay, p, state["m"], state["v"])


#: Adam's update (:func:`adam_update`) as one CUDA thread per entry, in double precision
#: between the loads and the stores: eqs. (adam-1), (adam-2), (adam-6) and (adam-5).
ADAM_CUDA = """
    double m1 = b1 * (double)m + (1.0 - b1) * (double)g;
    double v1 = b2 * (double)v + (1.0 - b2) * (double)g * (double)g;
    m = (T)m1;
    v = (T)v1;
    p = (T)(decay * (double)p - step * m1 / (sqrt(v1 / c2) + eps));
"""


@elementwise("T g, float64 b1, float64 b2, float64 step, float64 c2, float64 eps, "
             "float64 decay", "T p, T m, T v", ADAM_CUDA)
def adam_update(g, b1, b2, step, c2, eps, decay, p, m, v):
    r"""Adam's step of one array ``p`` with gradient ``g`` and moments ``m``, ``v``, in place;
    returns ``(p, m, v)``. ``step`` is :math:`\alpha / (1 - \beta_1^t)`, ``c2`` is
    :math:`1 - \beta_2^t` and ``decay`` :math:`1 - \alpha\lambda` (1 without weight
    decay). On CuPy it runs as :data:`ADAM_CUDA`, one kernel per array."""
    m *= b1                                                      # eq. (adam-1)
    m += (1.0 - b1) * g
    v *= b2                                                      # eq. (adam-2)
    v += (1.0 - b2) * (g * g)
    if decay != 1.0:
        p *= decay                                               # eq. (adam-6)
    # eq. (adam-5), theta -= alpha m_hat / (sqrt(v_hat) + eps), with m_hat and v_hat
    # substituted: alpha m_hat = (alpha / c1) m saves a pass over the block, and eps is
    # still added to sqrt(v_hat), as in Algorithm 1.
    p -= step * m / (namespace(v).sqrt(v / c2) + eps)
    return p, m, v
