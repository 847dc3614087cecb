"""PyTorch versions of nnscratch's networks, for the benchmarks only (never imported by the library)."""
