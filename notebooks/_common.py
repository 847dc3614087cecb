"""Shared by the notebooks: fast mode (CI) or full mode, where figures go, how they are shown.

``NNSCRATCH_FAST=1``: little data and few steps (the test suite runs every notebook so).
``NNSCRATCH_FIGURES``: the directory for the PNGs (default ``notebooks/figures``).
"""
import os

FAST = os.environ.get("NNSCRATCH_FAST", "0").lower() not in ("0", "", "false", "no")
FIGURES = os.environ.get("NNSCRATCH_FIGURES", os.path.join(os.path.dirname(os.path.abspath(
    __file__)), "figures"))
os.makedirs(FIGURES, exist_ok=True)


def _in_notebook():
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def show(path):
    """Display the PNG at ``path`` in a notebook; in a plain script, print the path."""
    if _in_notebook():
        from IPython.display import Image, display
        display(Image(filename=path))
    else:
        print(path)


def savefig(fig, name):
    """Save a matplotlib figure as ``FIGURES/name``, show it, close it."""
    path = os.path.join(FIGURES, name)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    show(path)
