"""Find, download and load the named datasets.

Where ``load(name, split)`` looks for the two IDX files of a split (``train-images-idx3-ubyte``
and ``train-labels-idx1-ubyte`` for ``"train"``, ``t10k-*`` for ``"test"``; each gzipped or
not), in this order:

1. ``data_dir``, if you pass it: the files directly in it, or in ``data_dir/<name>``.
   If they are not there, ``load`` raises ``FileNotFoundError`` and does *not* look
   elsewhere or download: you asked for that directory, so silently using another copy
   would hide a mistake.
2. ``$NNSCRATCH_DATA_DIR/<name>``, then ``$NNSCRATCH_DATA_DIR`` itself. (MNIST, KMNIST and
   Fashion-MNIST use the same file names, so prefer one subdirectory per dataset.)
3. The cache: ``$NNSCRATCH_CACHE/<name>`` if that variable is set, else
   ``$XDG_CACHE_HOME/nnscratch/<name>``, else ``~/.cache/nnscratch/<name>``.
4. Copies installed by the operating system; for Fashion-MNIST,
   ``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu: ``apt-get install
   dataset-fashion-mnist``).
5. With ``download=True`` (the default): download into the cache, from the mirrors in
   ``$NNSCRATCH_MIRRORS`` (URL prefixes separated by spaces or commas; ``{name}`` in one
   stands for the dataset's name) and then those of :mod:`nnscratch.datasets.registry`,
   verifying each file's SHA-256.

``"fashion-mnist-mini"`` is a 6,000 + 1,000 image subset of Fashion-MNIST shipped inside the
package; it needs no files and no network.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import core
from .download import DownloadError, download_file
from .idx import IDXError, read_idx
from .registry import EMBEDDED, REGISTRY, SPLIT_FILES, DatasetInfo, get_info

__all__ = ["load", "locate", "fetch", "cache_dir", "search_dirs", "names", "env_mirrors",
           "ENV_DATA_DIR", "ENV_CACHE", "ENV_MIRRORS"]

ENV_DATA_DIR = "NNSCRATCH_DATA_DIR"
ENV_CACHE = "NNSCRATCH_CACHE"
ENV_MIRRORS = "NNSCRATCH_MIRRORS"
EMBEDDED_FILE = "fashion_mnist_mini.npz"
N_CLASSES = 10


def names() -> tuple[str, ...]:
    """All dataset names ``load`` accepts."""
    return (*REGISTRY, EMBEDDED)


def load(
    name: str = EMBEDDED,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    binarize: bool = False,
    rng: np.random.Generator | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    sha256: Mapping[str, str] | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    limit: int | None = None,
) -> core.Dataset:
    """Load one split of a named dataset as a :class:`Dataset` with ``x`` of shape ``(N, 784)``.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"``, ``"kmnist"`` or ``"fashion-mnist-mini"``.
        split: ``"train"`` or ``"test"``.
        data_dir: a directory holding the files; if given, nothing else is searched and
            nothing is downloaded (see the module docstring for the full search order).
        download: download into the cache when the files are found nowhere.
        binarize: replace ``x`` by one Bernoulli sample ``x_bin ~ Bernoulli(x)`` drawn with
            ``rng`` (a static sample; for dynamic binarisation call :func:`binarize` on each
            batch instead).
        rng: numpy Generator, required when ``binarize=True``.
        mirrors: override the registry's mirror URL prefixes (tests use a local server).
        sha256: override expected digests, ``{file name: hex digest}``.
        progress: show a progress bar while downloading.
        timeout: seconds before a silent mirror is given up.
        limit: the first ``limit`` images only; of an IDX file only those rows are read
            (and decompressed), so a large file costs the memory of the rows kept.

    Returns:
        ``Dataset`` with ``x`` float32 ``(N, 784)`` in ``[0, 1]`` and ``labels`` int64 ``(N,)``.

    Raises:
        FileNotFoundError: files not found (and ``data_dir`` given, or ``download=False``).
        DownloadError: every mirror failed; the message says how to place the files by hand.
        IDXError: a file was found but is corrupt or truncated.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {tuple(SPLIT_FILES)}, got {split!r}")
    if binarize and rng is None:
        raise ValueError("binarize=True needs rng=np.random.default_rng(seed)")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise ValueError(f"limit must be an integer >= 1 or None, got {limit!r}")
    if name == EMBEDDED:
        ds = _load_embedded(split)
        ds.x, ds.labels = ds.x[:limit], ds.labels[:limit]
    else:
        info = get_info(name)
        paths = _find_or_fetch(info, split, data_dir, download, mirrors, sha256, progress, timeout)
        ds = _read_split(info.name, info.class_names, split, *paths, limit=limit)
    if binarize:
        ds.x = core.binarize(ds.x, rng)
    return ds


def _find_or_fetch(info: DatasetInfo, split: str, data_dir, download: bool, mirrors, sha256,
                   progress: bool, timeout: float) -> tuple[Path, Path]:
    paths = locate(info.name, split, data_dir)
    if paths is not None:
        return paths
    if data_dir is not None:
        raise FileNotFoundError(
            f"{info.name} ({split}): data_dir={str(data_dir)!r} does not contain "
            f"{_wanted(split)}, neither directly nor in a subdirectory {info.name!r}. "
            "Nothing else was searched or downloaded because data_dir was given; "
            "pass data_dir=None to use the cache and downloads."
        )
    if not download:
        searched = "\n".join(f"  {where}: {d}" for where, d in search_dirs(info.name))
        raise FileNotFoundError(
            f"{info.name} ({split}) not found and download=False. Looked in:\n{searched}\n"
            + _manual_hint(info.name, split)
        )
    return fetch(info.name, split, mirrors=mirrors, sha256=sha256, progress=progress,
                 timeout=timeout)


def cache_dir(name: str) -> Path:
    """Where downloads of ``name`` go: ``$NNSCRATCH_CACHE/<name>``, else
    ``$XDG_CACHE_HOME/nnscratch/<name>``, else ``~/.cache/nnscratch/<name>``."""
    root = os.environ.get(ENV_CACHE)
    if root:
        return Path(root).expanduser() / name
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "nnscratch" / name


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The directories ``locate`` tries, in order, each with a label for messages."""
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        return [("data_dir", d), ("data_dir", d / name)]
    dirs = []
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        d = Path(env).expanduser()
        dirs += [(f"${ENV_DATA_DIR}", d / name), (f"${ENV_DATA_DIR}", d)]
    dirs.append(("cache", cache_dir(name)))
    dirs += [("installed by the system", Path(d)) for d in get_info(name).system_dirs]
    return dirs


def locate(name: str, split: str = "train",
           data_dir: str | os.PathLike | None = None) -> tuple[Path, Path] | None:
    """``(images, labels)`` paths of the first directory holding both files, or ``None``."""
    for _, directory in search_dirs(name, data_dir):
        found = [_find_file(directory, fname) for fname in SPLIT_FILES[split]]
        if all(found):
            return found[0], found[1]
    return None


def _find_file(directory: Path, gz_name: str) -> Path | None:
    from ..training.rundir import file_kind
    for candidate in (gz_name, gz_name.removesuffix(".gz")):
        path = directory / candidate
        kind = file_kind(path, follow=True)
        if kind not in (None, "a directory"):     # a FIFO would be read forever: named
            raise IDXError(f"{path} is {kind}, not an IDX file")
        if path.is_file():
            return path
    return None


def fetch(
    name: str,
    split: str = "train",
    *,
    mirrors: Sequence[str] | None = None,
    sha256: Mapping[str, str] | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> tuple[Path, Path]:
    """Download the two files of a split into :func:`cache_dir` (files already there are kept).

    Returns ``(images, labels)`` paths. Raises :class:`DownloadError` with instructions for
    placing the files by hand when every mirror fails.
    """
    info = get_info(name)
    mirrors = (*env_mirrors(name), *info.mirrors) if mirrors is None else tuple(mirrors)
    digests = {**info.sha256, **(sha256 or {})}
    target = cache_dir(name)
    paths = []
    for fname in SPLIT_FILES[split]:
        dest = target / fname
        if not dest.is_file():
            urls = [m.rstrip("/") + "/" + fname for m in mirrors]
            try:
                download_file(urls, dest, digests.get(fname), progress=progress, timeout=timeout)
            except DownloadError as err:
                raise DownloadError(f"{info.name}: {err}\n{_manual_hint(name, split)}",
                                    err.attempts) from err
        paths.append(dest)
    return paths[0], paths[1]


def env_mirrors(name: str) -> tuple[str, ...]:
    """The mirrors named in ``$NNSCRATCH_MIRRORS`` for dataset ``name``, tried first."""
    text = os.environ.get(ENV_MIRRORS, "")
    return tuple(m.replace("{name}", name) for m in text.replace(",", " ").split())


def _wanted(split: str) -> str:
    images, labels = SPLIT_FILES[split]
    return f"{images} and {labels} (gzipped or not)"


def _manual_hint(name: str, split: str) -> str:
    info = get_info(name)
    return (
        f"To install {name} by hand, get {_wanted(split)} from {info.homepage} and put them in "
        f"{cache_dir(name)}, or in a directory of your choice and set "
        f"{ENV_DATA_DIR}=<that directory> (files directly in it or in a subdirectory "
        f"{name!r}), or pass data_dir=<that directory> to load()."
    )


def _read_split(name: str, class_names: tuple[str, ...], split: str,
                images_path: Path, labels_path: Path, limit: int | None = None) -> core.Dataset:
    """Read and check an (images, labels) pair of IDX files (their first ``limit`` rows)."""
    images, labels = read_idx(images_path, limit), read_idx(labels_path, limit)
    _check_pair(images, labels, f"{images_path} / {labels_path}")
    return _make_dataset(images, labels, name, split, str(images_path.parent), class_names)


def _check_pair(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    if images.ndim != 3 or images.shape[1:] != core.Dataset.image_shape:
        raise IDXError(f"{where}: images have shape {images.shape}, expected (N, 28, 28)")
    if len(images) == 0:
        raise IDXError(f"{where}: the file holds 0 images; it is empty or cut short: delete "
                       "it and get it again")
    if labels.ndim != 1 or len(labels) != len(images):
        raise IDXError(f"{where}: {len(images)} images but labels of shape {labels.shape}")
    if labels.size and labels.max() >= N_CLASSES:
        raise IDXError(f"{where}: label {labels.max()} out of range 0..{N_CLASSES - 1}")


def _make_dataset(images: np.ndarray, labels: np.ndarray, name: str, split: str, source: str,
                  class_names: tuple[str, ...]) -> core.Dataset:
    # Dividing in float32 gives the correctly rounded float32 of k/255 for every byte k.
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
    return core.Dataset(x=x, labels=labels.astype(np.int64), name=name, split=split,
                        source=source, class_names=tuple(class_names))


def _load_embedded(split: str) -> core.Dataset:
    """The subset shipped in ``nnscratch/datasets/data`` (see the README there)."""
    resource = resources.files(__package__) / "data" / EMBEDDED_FILE
    with resource.open("rb") as f, np.load(f, allow_pickle=False) as npz:
        images, labels = npz[f"x_{split}"], npz[f"y_{split}"]
    _check_pair(images, labels, str(resource))
    return _make_dataset(images, labels, EMBEDDED, split, str(resource),
                         REGISTRY["fashion-mnist"].class_names)
