"""Figures (PNG). matplotlib is imported inside the functions only, so ``import nnscratch``
never needs it; install it with ``pip install 'nnscratch[plot]'``."""
