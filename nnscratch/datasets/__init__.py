"""Image datasets for the models: MNIST, Fashion-MNIST, KMNIST and an embedded mini subset.

Quick start (works offline, nothing to install)::

    from nnscratch import datasets
    train = datasets.load("fashion-mnist-mini", "train")      # train.x: (6000, 784) float32
    rng = np.random.default_rng(0)
    for idx in datasets.batches(len(train), 64, rng):
        x = datasets.binarize(train.x[idx], rng)               # (64, 784) of 0/1

``load("mnist")``, ``load("fashion-mnist")`` and ``load("kmnist")`` find the IDX files on disk
or download them (SHA-256 verified); see :mod:`nnscratch.datasets.loading` for where they are
searched. This subpackage imports only numpy and the standard library.
"""

from .core import Dataset, batches, binarize
from .download import DownloadError, download_file
from .idx import IDXError, read_idx, write_idx
from .loading import ENV_CACHE, ENV_DATA_DIR, cache_dir, fetch, load, locate, names, search_dirs
from .registry import EMBEDDED, REGISTRY, DatasetInfo

__all__ = [
    "Dataset", "load", "binarize", "batches", "names",
    "read_idx", "write_idx", "IDXError",
    "download_file", "DownloadError", "fetch", "locate", "search_dirs", "cache_dir",
    "REGISTRY", "DatasetInfo", "EMBEDDED", "ENV_DATA_DIR", "ENV_CACHE",
]
