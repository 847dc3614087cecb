"""PyTorch versions of nnscratch's networks, for the benchmarks only.

Never imported by the library.
"""
