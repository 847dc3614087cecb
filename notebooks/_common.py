"""Shared by the notebooks: fast mode (CI) or full mode, and where figures go."""
import os

FAST = os.environ.get("NNSCRATCH_FAST", "0") not in ("0", "", "false")
FIGURES = os.environ.get("NNSCRATCH_FIGURES", os.path.join(os.path.dirname(os.path.abspath(
    __file__)), "figures"))
os.makedirs(FIGURES, exist_ok=True)


def savefig(fig, name):
    path = os.path.join(FIGURES, name)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
