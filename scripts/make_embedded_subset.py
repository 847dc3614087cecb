#!/usr/bin/env python
"""Rebuild nnscratch/datasets/data/fashion_mnist_mini.npz from the Fashion-MNIST IDX files.

The subset is deterministic, no randomness involved: for each class c = 0..9, the first
``--train-per-class`` images of class c in the order of the training file, and the first
``--test-per-class`` of the test file; the chosen indices are then sorted, so the subset keeps
the files' order. The npz stores the images, the labels and these source indices.

Usage (from the repository root)::

    python scripts/make_embedded_subset.py                      # rebuild the shipped file
    python scripts/make_embedded_subset.py --check              # compare, write nothing
    python scripts/make_embedded_subset.py --source ~/data/fashion-mnist

The default source is the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``). The npz's zip time stamps change with every write,
so compare the printed content digest, not the file's SHA-256.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from nnscratch.datasets import locate, read_idx  # noqa: E402
from nnscratch.datasets.download import sha256_of  # noqa: E402

DEFAULT_SOURCE = "/usr/share/datasets/fashion-mnist"
DEFAULT_OUT = REPO / "nnscratch" / "datasets" / "data" / "fashion_mnist_mini.npz"


def first_per_class(labels: np.ndarray, per_class: int, n_classes: int = 10) -> np.ndarray:
    """Sorted indices of the first ``per_class`` examples of each class.

    Returns int64 array of shape ``(n_classes * per_class,)``.
    """
    chosen = []
    for c in range(n_classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        if len(idx) < per_class:
            raise SystemExit(f"class {c} has only {len(idx)} examples, {per_class} requested")
        chosen.append(idx)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def build(source: str, train_per_class: int, test_per_class: int) -> dict[str, np.ndarray]:
    """The arrays of the npz: ``x_<split>`` (N, 28, 28) uint8, ``y_<split>`` (N,) uint8,
    ``<split>_index`` (N,) int64 positions in the source files."""
    arrays = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        paths = locate("fashion-mnist", split, data_dir=source)
        if paths is None:
            raise SystemExit(f"no Fashion-MNIST {split} files in {source}")
        for p in paths:
            print(f"source {p.name}: sha256 {sha256_of(p)}")
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        index = first_per_class(labels, per_class)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images[index], labels[index]
        arrays[f"{split}_index"] = index
    return arrays


def content_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes: stable across re-saves of the npz."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="directory with the IDX files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--train-per-class", type=int, default=600)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--check", action="store_true",
                        help="compare with the existing --out instead of writing it")
    args = parser.parse_args(argv)

    arrays = build(args.source, args.train_per_class, args.test_per_class)
    digest = content_digest(arrays)
    print(f"content digest {digest}")
    if args.check:
        with np.load(args.out, allow_pickle=False) as npz:
            shipped = content_digest({k: npz[k] for k in npz.files})
        print(f"shipped digest {shipped}")
        return 0 if shipped == digest else 1
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
