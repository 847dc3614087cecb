"""Print the worst float64 gradient-check error of every component on each CPU backend.

    python scripts/gradcheck_report.py [--json benchmarks/results/gradcheck.json]

The same checks run in the test suite (threshold 1e-7); this script only tabulates them.
``--json`` also records them in the results file the table of docs/benchmarks.md is made from
(``tests/test_readme.py`` regenerates the table from it).
"""
import json
import platform
import sys

import numpy as np

import nnscratch as nn


def away_from_zero(b, shape, margin=0.1):
    x = nn.to_numpy(b.normal(shape))
    return b.asarray(np.where(np.abs(x) < margin, np.sign(x) * margin + x, x))


def loss_report(b, loss, diff, fixed):
    inputs = {**diff, **fixed}
    _, grads = loss(*inputs.values())
    grads = grads if isinstance(grads, tuple) else (grads,)
    analytic = {k: nn.to_numpy(g) for k, g in zip(diff, grads)}
    return nn.check_gradients(lambda: loss(*inputs.values())[0], diff, analytic)


def stabilisers(b):
    """Spectral normalisation with u converged then frozen (evaluation mode), batch
    normalisation in training mode, dropout with its mask fixed by reseeding."""
    sn = nn.SpectralNormDense(5, 3, backend=b)
    for _ in range(300):
        sn.forward(b.zeros((1, 5)))
    yield "SpectralNormDense (eval)", nn.gradcheck(sn.eval(), b.normal((4, 5)))
    yield "BatchNorm1d (train)", nn.gradcheck(nn.BatchNorm1d(5, backend=b),
                                              b.normal((6, 5)) * 3.0 - 1.0)
    masks = nn.Backend(b.name, b.dtype_name)       # its own generator, reseeded per forward
    dropout, x, delta = nn.Dropout(0.3, backend=masks), b.normal((4, 6)), b.normal((4, 6))

    def f():
        masks.seed(7)
        return b.xp.sum(delta * dropout.forward(x))
    f()
    dx = nn.to_numpy(dropout.backward(delta))
    yield "Dropout (fixed mask)", nn.check_gradients(f, {"x": x}, {"x": dx})


def components(b):
    yield "Dense", nn.gradcheck(nn.Dense(5, 3, backend=b), b.normal((4, 5)))
    yield from stabilisers(b)
    for name, layer in [("ReLU", nn.ReLU(backend=b)), ("LeakyReLU", nn.LeakyReLU(0.2, backend=b)),
                        ("Sigmoid", nn.Sigmoid(backend=b)), ("Tanh", nn.Tanh(backend=b)),
                        ("Identity", nn.Identity(backend=b))]:
        yield name, nn.gradcheck(layer, away_from_zero(b, (4, 6)))
    yield "bce_with_logits", loss_report(b, nn.bce_with_logits, {"s": b.normal((4, 5)) * 3},
                                         {"x": b.uniform((4, 5))})
    yield "bce", loss_report(b, nn.bce, {"p": b.uniform((4, 5), 0.05, 0.95)},
                             {"x": b.uniform((4, 5))})
    yield "mse", loss_report(b, nn.mse, {"y": b.normal((3, 4))}, {"t": b.normal((3, 4))})
    yield "kl_normal", loss_report(b, nn.kl_normal, {"mu": b.normal((3, 4)),
                                                     "logvar": b.normal((3, 4))}, {})
    labels = b.asarray(np.array([0, 2, 1, 2]), dtype=b.xp.int64)
    yield "softmax_cross_entropy", loss_report(b, nn.softmax_cross_entropy,
                                               {"s": b.normal((4, 3)) * 2}, {"labels": labels})
    net = nn.Sequential(nn.Dense(6, 8, backend=b), nn.LeakyReLU(0.2, backend=b),
                        nn.Dense(8, 4, init="glorot", backend=b), nn.Sigmoid(backend=b))
    target = b.uniform((5, 4))
    yield "Dense-LReLU-Dense-Sigmoid+BCE", nn.gradcheck(net, b.normal((5, 6)),
                                                        loss=lambda p: nn.bce(p, target))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    rows = {}
    for name in ("numpy", "array_api_strict"):
        b = nn.Backend(name, "float64", seed=0)
        for component, report in components(b):
            rows.setdefault(component, {})[name] = max(report.values())
    if argv[:1] == ["--json"]:
        with open(argv[1], "w") as f:
            json.dump({"benchmark": "worst float64 relative error of eq. (gradcheck-3)",
                       "threshold": 1e-7, "rows": rows,
                       "env": {"python": platform.python_version(), "numpy": np.__version__,
                               "machine": platform.machine()}}, f, indent=1)
            f.write("\n")
    print("| component | numpy | array-api-strict |\n|---|---|---|")
    for component, errs in rows.items():
        print(f"| {component} | {errs['numpy']:.1e} | {errs['array_api_strict']:.1e} |")


if __name__ == "__main__":
    main()
