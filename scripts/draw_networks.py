"""Draw the networks and the training steps from the code: docs/figures/net_*.png, graph_*.png.

    python scripts/draw_networks.py           # redraw every figure, rewrite networks.json
    python scripts/draw_networks.py --check   # exit 1 if a figure is out of date

Each figure is drawn from a *spec*, a small JSON-able description built from the code:

* an architecture figure per preset (``net_vae_classic``, ``net_gan_seed``...): the layer
  list of the model the preset builds (``describe()`` of every layer of the networks that
  ``nnscratch.models`` constructs, with the GAN's default recipe), so a change of preset
  or recipe changes the spec;
* the computational graph of one VAE step and of one GAN step (``graph_vae_step``,
  ``graph_gan_step``): nodes and edges of the forward pass (black) and of the backward pass
  (red), each edge naming the method of the code that computes it and the equation it
  implements; the methods are looked up in the code and the labels in docs/ by the tests.

``docs/figures/networks.json`` holds the sha256 of each spec beside the PNGs;
``tests/test_docs.py`` rebuilds the specs from the code and fails when a hash differs: the
figure no longer shows what the code builds, so run this script again.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
HASHES = FIGURES / "networks.json"
DPI = 100

# -- the specs, from the code -----------------------------------------------------------------


def _backend():
    import nnscratch as nn
    return nn.Backend("numpy", dtype="float32", seed=0)


def layers(net):
    """The layer list of a :class:`Sequential`, as its layers describe themselves."""
    return [layer.describe() for layer in net.layers]


def gan_spec(preset):
    """G and D of a GAN preset, built as ``nnscratch train gan --preset`` builds them."""
    from nnscratch.models.gan import GAN, GANTrainer
    cfg = GANTrainer._resolve({"preset": preset})
    gan = GAN(cfg["latent"], cfg["data_dim"], cfg["G_hidden"], cfg["D_hidden"], cfg["G_alpha"],
              cfg["D_alpha"], cfg["output"], cfg["init"], cfg["pack"], cfg["G_norm"],
              cfg["D_spectral"], cfg["D_dropout"], backend=_backend())
    n_G = sum(int(p.size) for p in gan.G.params.values())
    n_D = sum(int(p.size) for p in gan.D.params.values())
    return {"kind": "architecture",
            "title": f"GAN preset '{preset}', recipe '{cfg['recipe']}'",
            "columns": [{"name": f"generator G ({n_G / 1e6:.2f}M parameters)",
                         "input": f"z ({cfg['latent']})", "layers": layers(gan.G),
                         "output": "x~ = G(z)"},
                        {"name": f"discriminator D ({n_D / 1e6:.2f}M parameters)",
                         "input": f"x or x~ ({cfg['pack'] * cfg['data_dim']})",
                         "layers": layers(gan.D), "output": "logit s, D = sigma(s)"}],
            "note": (f"EMA of G's weights ({cfg['ema']})" if cfg["ema"] else "no EMA")
            + f"; lr_D / lr_G = {cfg['ttur'][0]:g} / {cfg['ttur'][1]:g} x lr"}


def vae_spec(preset):
    """The encoder, the two heads and the decoder of a VAE preset."""
    from nnscratch.models.vae import VAE
    vae = VAE.from_preset(preset, backend=_backend())
    n = sum(int(p.size) for p in vae.params.values())
    return {"kind": "architecture",
            "title": f"VAE preset '{preset}' ({n / 1e6:.2f}M parameters)",
            "columns": [{"name": "encoder", "input": f"x ({vae.n_in})",
                         # a list is one row of parallel layers: the two heads both
                         # read the last hidden layer (logvar is not computed from mu)
                         "layers": layers(vae.enc) + [[f"mu: {vae.mu.describe()}",
                                                       f"logvar: {vae.logvar.describe()}"]],
                         "output": "mu, logvar"},
                        {"name": "decoder", "input": f"z = mu + exp(logvar/2) eps ({vae.latent})",
                         "layers": layers(vae.dec), "output": "logits s of p(x | z)"}],
            "note": "z sampled by the reparameterisation (vae-2)"}


def _method(path):
    """``"nnscratch.models.gan.GAN.g_backward"`` must exist: the edge names real code."""
    import importlib
    module, cls, name = path.rsplit(".", 2)
    getattr(getattr(importlib.import_module(module), cls), name)
    return path.rsplit(".", 2)[1] + "." + name


def vae_step_spec():
    """One VAE step: nodes at (column, row) and edges (from, to, label, kind); a value that
    flows between two boxes is named on its arrow."""
    m = "nnscratch.models.vae.VAE."
    nodes = {"x": ("$x$", 0, 1, "data"), "enc": ("encoder\n+ two heads", 1, 1, "net"),
             "z": ("sampling\n$z = \\mu + \\sigma \\epsilon$", 2, 1, "value"),
             "eps": ("$\\epsilon \\sim \\mathcal{N}(0, I)$", 2, 2.2, "data"),
             "dec": ("decoder", 3, 1, "net"),
             "L": ("$L$ = BCE + KL\n(bce-1), (kl-1)", 4, 1, "loss"),
             "adam": ("Adam step\n(adam-1) to (adam-5)", 1, 2.2, "step")}
    f, b = "forward", "backward"
    edges = [("x", "enc", f"{_method(m + 'encode')}\n(vae-1)", f),
             ("enc", "z", "$\\mu$, logvar", f), ("eps", "z", "(vae-2)", f),
             ("z", "dec", f"$z$\n{_method(m + 'forward')}", f),
             ("dec", "L", "logits $s$\n(vae-3)", f),
             ("enc", "L", "$\\mu$, logvar into the KL", "forward-bend"),
             ("L", "dec", "ds (bce-2)", b),
             ("dec", "z", f"$\\delta_z$\n{_method(m + 'backward')}", b),
             ("z", "enc", "(vae-5)\n(vae-6)", b),
             ("L", "enc", "(kl-2), (kl-3): the KL's own gradients", "backward-bend"),
             ("enc", "adam", "", "step")]
    return {"kind": "graph", "title": "One VAE step", "nodes": nodes, "edges": edges}


def gan_step_spec():
    """The two halves of one GAN step: the D step and the G step, the G step's gradient
    going back through D (whose weights it leaves alone) into G."""
    m = "nnscratch.models.gan.GAN."
    t = "nnscratch.models.gan.GANTrainer."
    nodes = {
        # the discriminator step (top)
        "z1": ("$z$", 0, 2.6, "data"), "G1": ("G", 1, 2.6, "net-frozen"),
        "xr": ("real $x$", 1, 3.7, "data"), "D1": ("D", 2, 2.6, "net"),
        "L1": ("$L_D$", 3, 2.6, "loss"),
        "a1": (f"Adam step on D\n{_method(t + 'd_step')}", 2, 3.7, "step"),
        # the generator step (bottom)
        "z2": ("$z$", 0, 1, "data"), "G2": ("G", 1, 1, "net"),
        "D2": ("D (weights\nnot updated)", 2, 1, "net-frozen"), "L2": ("$L_G$", 3, 1, "loss"),
        "a2": (f"Adam step on G\n{_method(t + 'g_step')}", 1, -0.1, "step"),
    }
    f, b = "forward", "backward"
    edges = [("z1", "G1", "", f), ("G1", "D1", "$\\tilde x$, as data\npack (gan-8)", f),
             ("xr", "D1", "", f),
             ("D1", "L1", f"$s_{{real}}, s_{{fake}}$\n{_method(m + 'd_loss')}\n(gan-1)", f),
             ("L1", "D1", f"ds (gan-2)\n{_method(m + 'd_backward')}", b),
             ("D1", "a1", "", "step"),
             ("z2", "G2", "", f), ("G2", "D2", "$\\tilde x = G(z)$\npack (gan-8)", f),
             ("D2", "L2", f"$s$\n{_method(m + 'g_loss')}\n(gan-3)", f),
             ("L2", "D2", "ds (gan-4)", b),
             ("D2", "G2", f"{_method(m + 'g_backward')}\n(gan-7)", b),
             ("G2", "a2", "", "step")]
    return {"kind": "graph", "title": "One GAN step: the D step (top), the G step (bottom)",
            "nodes": nodes, "edges": edges}


def specs():
    """Every figure's spec, by file name (without .png)."""
    out = {"graph_vae_step": vae_step_spec(), "graph_gan_step": gan_step_spec()}
    for preset in ("classic", "seed"):
        out[f"net_vae_{preset}"] = vae_spec(preset)
    for preset in ("mlp", "seed", "toy"):
        out[f"net_gan_{preset}"] = gan_spec(preset)
    return out


def digest(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


# -- drawing ---------------------------------------------------------------------------------
COLOURS = {"Dense": "#cfe2f3", "SpectralNormDense": "#f9cb9c", "BatchNorm1d": "#d9ead3",
           "Dropout": "#fff2cc", "mu": "#d9d2e9", "logvar": "#d9d2e9"}
ACTIVATION = "#eeeeee"
NODE = {"data": "#ffffff", "value": "#f3f3f3", "net": "#cfe2f3", "net-frozen": "#e3e3e3",
        "loss": "#f4cccc", "step": "#d9ead3"}
RED = "#c0392b"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def draw_architecture(spec, path):
    plt = _pyplot()
    from matplotlib.patches import FancyBboxPatch
    columns = spec["columns"]
    rows = max(len(c["layers"]) for c in columns) + 2
    fig, ax = plt.subplots(figsize=(4.2 * len(columns), 0.42 * rows + 1.0))
    for i, col in enumerate(columns):
        x = 4.2 * i
        items = [("in", col["input"])] + [("layer", s) for s in col["layers"]] + \
                [("out", col["output"])]
        ax.text(x + 1.8, rows + 0.15, col["name"], ha="center", va="bottom", fontsize=10,
                weight="bold")
        above = [x + 1.8]                       # centres of the boxes of the row above
        for j, (what, row) in enumerate(items):
            y = rows - 1 - j
            labels = row if isinstance(row, list) else [row]
            w = 3.2 / len(labels)
            centres = [x + 0.2 + w * (k + 0.5) for k in range(len(labels))]
            for label, cx in zip(labels, centres):
                kind = label.split("(")[0].split(":")[0]
                colour = "none" if what != "layer" else COLOURS.get(kind, ACTIVATION)
                ax.add_patch(FancyBboxPatch((cx - w / 2 + 0.03 * (len(labels) > 1), y + 0.12),
                                            w - 0.06 * (len(labels) > 1), 0.7, linewidth=0.8,
                                            boxstyle="round,pad=0.02,rounding_size=0.12",
                                            facecolor=colour,
                                            edgecolor="black" if what == "layer" else "none"))
                text = label.replace("->", " -> ") if len(labels) == 1 else \
                    label.replace(": ", ":\n").replace("->", "→")
                ax.text(cx, y + 0.47, text, ha="center", va="center",
                        fontsize=8.5 if len(labels) == 1 else 7.5, family="monospace",
                        style="italic" if what != "layer" else "normal")
            if j:
                for a in above:
                    for cx in centres:
                        ax.annotate("", (cx, y + 0.82), (a, y + 1.12),
                                    arrowprops={"arrowstyle": "->", "lw": 0.8})
            above = centres
    ax.set_title(spec["title"] + "\n" + spec["note"], fontsize=10)
    ax.set_xlim(0, 4.2 * len(columns) - 0.6)
    ax.set_ylim(-0.2, rows + 0.7)
    ax.axis("off")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def draw_graph(spec, path):
    plt = _pyplot()
    from matplotlib.patches import FancyBboxPatch
    nodes = spec["nodes"]
    xs = [n[1] for n in nodes.values()]
    ys = [n[2] for n in nodes.values()]
    sx, sy, w, h = 2.9, 1.15, 1.55, 0.62          # spacing and box size, in inches
    fig, ax = plt.subplots(figsize=(sx * max(xs) + w + 0.4, sy * (max(ys) - min(ys)) + 2.2))

    def centre(key):
        _, c, r, _ = nodes[key]
        return sx * c + w / 2, sy * r

    for key, (label, _c, _r, kind) in nodes.items():
        cx, cy = centre(key)
        ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h,
                                    boxstyle="round,pad=0.02,rounding_size=0.1",
                                    facecolor=NODE[kind], linewidth=0.9,
                                    edgecolor="black", linestyle="--" if kind == "data"
                                    else "-"))
        longest = max(len(line) for line in label.split("\n"))
        ax.text(cx, cy, label, ha="center", va="center", fontsize=10 if longest <= 16 else 8.5)
    for a, b, label, kind in spec["edges"]:
        (ax_, ay), (bx, by) = centre(a), centre(b)
        back = kind.startswith("backward")
        twin = any(e[:2] == (b, a) for e in spec["edges"])
        # a backward edge runs below (or left of) its forward twin, so both stay readable
        off = (-0.11 if back else 0.11) if twin else 0
        vertical = abs(bx - ax_) < 1e-9
        shift = (off, 0) if vertical else (0, off)
        start, end = _border((ax_ + shift[0], ay + shift[1]), (bx + shift[0], by + shift[1]),
                             w, h)
        if kind.endswith("bend"):                 # an arc leaves and enters by the bottoms
            dx = 0.25 if kind.startswith("forward") else -0.25
            start, end = (ax_ + dx, ay - h / 2 - 0.03), (bx + dx, by - h / 2 - 0.03)
        colour = RED if back else ("#38761d" if kind == "step" else "black")
        bend = {"forward-bend": 0.2, "backward-bend": -0.3}.get(kind, 0)
        ax.annotate("", end, start, arrowprops={
            "arrowstyle": "->", "lw": 1.6 if back else 1.0, "color": colour,
            "connectionstyle": f"arc3,rad={bend}"})
        if not label:
            continue
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        lines = label.count("\n") + 1
        if bend:                                  # the arc's lowest point, below the row
            dist = abs(end[0] - start[0])
            mx, my, ha = mx, my - abs(bend) * dist / 2 - 0.16, "center"
        elif vertical or kind == "step":
            mx, ha = mx + 0.1, "left"
        else:
            my += (-1 if back else 1) * (0.1 + 0.11 * lines)
            ha = "center"
        ax.text(mx, my, label, ha=ha, va="center", fontsize=8, color=colour,
                family="monospace",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 0.4})
    ax.set_title(spec["title"] + "\n(black: forward; red: gradient; green: update)",
                 fontsize=10)
    ax.set_xlim(-0.2, sx * max(xs) + w + 0.2)
    arcs = any(e[3].endswith("bend") for e in spec["edges"])
    ax.set_ylim(sy * min(ys) - (1.7 if arcs else 0.45), sy * max(ys) + 0.45)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def _border(p, q, w, h):
    """The segment from box p to box q, cut at the two boxes' borders."""
    (px, py), (qx, qy) = p, q
    dx, dy = qx - px, qy - py
    t = min((w / 2 + 0.04) / abs(dx) if dx else 1e9, (h / 2 + 0.04) / abs(dy) if dy else 1e9)
    return (px + t * dx, py + t * dy), (qx - t * dx, qy - t * dy)


def draw(name, spec, directory=FIGURES):
    path = pathlib.Path(directory) / f"{name}.png"
    (draw_graph if spec["kind"] == "graph" else draw_architecture)(spec, path)
    return path


def stale(directory=FIGURES):
    """The figures whose committed hash differs from the spec the code gives now."""
    hashes = json.loads((pathlib.Path(directory) / HASHES.name).read_text())
    now = {name: digest(spec) for name, spec in specs().items()}
    return sorted(n for n in set(now) | set(hashes) if hashes.get(n) != now.get(n)
                  or not (pathlib.Path(directory) / f"{n}.png").exists())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only say which figures are stale")
    parser.add_argument("--out", type=pathlib.Path, default=FIGURES)
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.out)
        print("stale:", ", ".join(names) if names else "none")
        return 1 if names else 0
    all_specs = specs()
    for name, spec in all_specs.items():
        print(draw(name, spec, args.out))
    (args.out / HASHES.name).write_text(json.dumps(
        {name: digest(spec) for name, spec in all_specs.items()}, indent=1, sort_keys=True)
        + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
