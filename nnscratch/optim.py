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

from .backend import to_numpy


class Optimizer:
    """Base class: holds the module, the learning rate, a step counter and the state."""

    #: Elements per block of an update (see :meth:`step`): 64 Ki float32 = 256 KiB per array.
    block_size = 1 << 16

    def __init__(self, module, lr):
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: the learning rate must be positive, got {lr}")
        self.module = module
        self.lr = float(lr)
        self.t = 0
        self.state = {}          # id(param) -> {"m": array, ...}

    def step(self):
        """Apply one update to every parameter from the gradients of the last backward.

        ``_update`` runs on blocks of about ``block_size`` elements (consecutive rows), on
        views that it changes in place. Why blocks: every line of an update rule is a pass
        over its arrays; on a whole 8-million-entry matrix each pass streams it from main
        memory again, on a block the later passes find it in the cache. (Spreading the
        blocks over a thread pool was measured too: no faster on a 2-core machine, so no.)
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
            for rows in backend.row_blocks(p.shape, self.block_size):
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

    .. math:: v \leftarrow \mu v + g, \qquad \theta \leftarrow \theta - \eta v

    With ``momentum=0`` this is plain :math:`\theta \leftarrow \theta - \eta g`.
    """

    def __init__(self, module, lr=0.01, momentum=0.0):
        super().__init__(module, lr)
        self.momentum = float(momentum)

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
    not an L2 term in the gradient, so it does not pass through the moment estimates.
    """

    def __init__(self, module, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(module, lr)
        self.beta1, self.beta2 = (float(b) for b in betas)
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            raise ValueError(f"Adam: betas must lie in [0, 1), got {betas}")
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)

    def _init_state(self, p):
        zeros = self.module.backend.zeros_like
        return {"m": zeros(p), "v": zeros(p)}

    def _update(self, p, g, state):
        """One Adam step of parameter ``p`` with gradient ``g``, in place: eqs. (adam-1) to
        (adam-5), and (adam-6) when ``weight_decay`` is set."""
        xp = self.module.backend.xp
        b1, b2, t = self.beta1, self.beta2, self.t
        m, v = state["m"], state["v"]
        m *= b1                                                  # eq. (adam-1)
        m += (1.0 - b1) * g
        v *= b2                                                  # eq. (adam-2)
        v += (1.0 - b2) * (g * g)
        c1 = 1.0 - b1 ** t                                       # m_hat = m / c1, eq. (adam-3)
        c2 = 1.0 - b2 ** t                                       # v_hat = v / c2, eq. (adam-4)
        if self.weight_decay:
            p *= 1.0 - self.lr * self.weight_decay               # eq. (adam-6)
        # eq. (adam-5), theta -= alpha m_hat / (sqrt(v_hat) + eps), with m_hat and v_hat
        # substituted: alpha m_hat = (alpha / c1) m saves a pass over the block, and eps is
        # still added to sqrt(v_hat), as in Algorithm 1.
        p -= (self.lr / c1) * m / (xp.sqrt(v / c2) + self.eps)
