"""The one table of named datasets: file names, mirrors, SHA-256 sums and class names.

Every SHA-256 is of the ``.gz`` file exactly as the mirrors serve it, and is checked after
every download. Where they come from:

* MNIST and KMNIST: the published sums in tensorflow_datasets
  (``tensorflow_datasets/url_checksums/mnist.txt`` and ``kmnist.txt``); the same values are used
  by torchvision's Ruby port and other loaders.
* Fashion-MNIST: tensorflow_datasets' ``fashion_mnist.txt``, checked independently here. The
  Debian package ``dataset-fashion-mnist`` ships the same deflate streams with a rewritten gzip
  header (file name dropped, time stamp changed); putting the original header back gives files
  whose MD5 equals the one published in the Fashion-MNIST README and whose SHA-256 equals the
  value below, for all four files. So the Debian ``.gz`` files are *not* byte-identical to the
  upstream ones (their own sums are in ``DEBIAN_SHA256``), but their contents are.

A mirror is a URL prefix: the file name is appended to it. Mirrors are tried in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

__all__ = ["DatasetInfo", "REGISTRY", "SPLIT_FILES", "EMBEDDED", "DEBIAN_SHA256", "get_info"]

# (images, labels) file names of each split, shared by all three datasets.
SPLIT_FILES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
})

# The class-balanced Fashion-MNIST subset shipped inside the package (see data/README.md).
EMBEDDED = "fashion-mnist-mini"


@dataclass(frozen=True)
class DatasetInfo:
    """What we know about one downloadable dataset.

    ``sha256`` maps each ``.gz`` file name to its hex digest, or to ``None`` when no published
    sum is known; such a file is never downloaded (we refuse unverified data).
    """

    name: str
    title: str
    mirrors: tuple[str, ...]
    sha256: Mapping[str, str | None]
    class_names: tuple[str, ...]
    homepage: str
    license: str
    system_dirs: tuple[str, ...] = field(default=())  # read-only copies installed by a distro


_MNIST = DatasetInfo(
    name="mnist",
    title="MNIST handwritten digits (LeCun, Cortes & Burges)",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
        "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's mirror
        # The original host; it answers 403 today but is the authoritative source.
        "https://yann.lecun.com/exdb/mnist/",
    ),
    sha256=MappingProxyType({
        "train-images-idx3-ubyte.gz":
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz":
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }),
    class_names=tuple(str(d) for d in range(10)),
    homepage="http://yann.lecun.com/exdb/mnist/",
    license="CC BY-SA 3.0 (as stated by the MNIST maintainers)",
)

_FASHION_MNIST = DatasetInfo(
    name="fashion-mnist",
    title="Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, Zalando Research)",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    sha256=MappingProxyType({
        "train-images-idx3-ubyte.gz":
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz":
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz":
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz":
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    }),
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    license="MIT",
    system_dirs=("/usr/share/datasets/fashion-mnist",),  # apt-get install dataset-fashion-mnist
)

_KMNIST = DatasetInfo(
    name="kmnist",
    title="Kuzushiji-MNIST (Clanuwat et al. 2018, ROIS-DS CODH)",
    mirrors=(
        "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
    ),
    sha256=MappingProxyType({
        "train-images-idx3-ubyte.gz":
            "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
        "train-labels-idx1-ubyte.gz":
            "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
        "t10k-images-idx3-ubyte.gz":
            "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
        "t10k-labels-idx1-ubyte.gz":
            "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
    }),
    # Romanised hiragana お き す つ な は ま や れ を, one per row of the kana table.
    class_names=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    homepage="http://codh.rois.ac.jp/kmnist/",
    license="CC BY-SA 4.0",
)

REGISTRY: Mapping[str, DatasetInfo] = MappingProxyType(
    {info.name: info for info in (_MNIST, _FASHION_MNIST, _KMNIST)}
)

# SHA-256 of the Debian package's recompressed .gz files (same contents as upstream, see above).
DEBIAN_SHA256: Mapping[str, str] = MappingProxyType({
    "train-images-idx3-ubyte.gz":
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz":
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz":
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz":
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
})


def get_info(name: str) -> DatasetInfo:
    """The registry entry for ``name``; a clear error lists the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join([*REGISTRY, EMBEDDED])
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}") from None
