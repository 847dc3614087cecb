"""The image metric's scale on a full dataset: the classifier's accuracy and training time,
and the Frechet distance (eq. frechet-1) of real, degraded and fake image sets.

    .venv/bin/python benchmarks/classifier.py [--dataset fashion-mnist] [--cache DIR]

Trains the classifier into the cache (``--cache``, default: the user cache) unless it is
there, then prints one line per image set: Frechet distance to the test split, the floor at
the same N (N real training images), classes covered and the KL of the class histogram
from uniform. Wall times depend on the load of the machine; the load average is printed.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def blur(x, sigma=1.0):
    """Gaussian blur of images ``(N, 784)`` (separable, zero padding), values stay in [0, 1]."""
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    img = np.pad(x.reshape(-1, 28, 28), ((0, 0), (r, r), (r, r)))
    rows = sum(k[i] * img[:, i:i + 28, :] for i in range(2 * r + 1))
    out = sum(k[i] * rows[:, :, i:i + 28] for i in range(2 * r + 1))
    return out.reshape(-1, 784).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--cache", default=None, help="cache directory ($NNSCRATCH_CACHE)")
    parser.add_argument("--retrain", action="store_true", help="train even if cached")
    args = parser.parse_args()
    if args.cache:
        os.environ["NNSCRATCH_CACHE"] = args.cache

    from nnscratch import datasets
    from nnscratch.metrics.classifier import cache_path, get_classifier
    from nnscratch.metrics.frechet import image_metrics

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    t0, c0 = time.perf_counter(), time.process_time()
    clf = get_classifier(args.dataset, retrain=args.retrain)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    info = clf.info
    print(f"classifier {clf.arch}: test accuracy {100 * info['test_accuracy']:.2f}% after "
          f"{info['epochs']} epochs; training {info['train_seconds']:.1f} s "
          f"(this call: {wall:.1f} s wall, {cpu:.1f} s CPU; load average now "
          f"{os.getloadavg()[0]:.1f}); file {cache_path(args.dataset, epochs=info['epochs'])}")

    train = datasets.load(args.dataset, "train")
    test = datasets.load(args.dataset, "test")
    rng = np.random.default_rng(0)
    n = min(10000, len(test))
    half = test.x[test.labels < 5]
    rows = {
        f"train subset (N={n}): the floor": train.x[rng.choice(len(train), n, replace=False)],
        "test split itself": test.x[:n],
        "uniform noise": rng.random((n, 784), dtype=np.float32),
        "test blurred, sigma=1 px": blur(test.x[:n], 1.0),
        "test blurred, sigma=2 px": blur(test.x[:n], 2.0),
        "test + N(0, 0.1^2) noise, clipped": np.clip(
            test.x[:n] + 0.1 * rng.standard_normal((n, 784), dtype=np.float32), 0, 1),
        f"test, classes 0-4 only (N={len(half)})": half,
        f"test, first {len(half)} (all classes)": test.x[:len(half)],
        "one test image repeated": np.repeat(test.x[:1], n, axis=0),
    }
    print(f"\n{'image set':<40} {'frechet':>9} {'floor':>7} {'covered':>7} {'kl':>6}  "
          f"{'seconds':>7}")
    for name, x in rows.items():
        t0 = time.perf_counter()
        m = image_metrics(x, args.dataset, classifier=clf)
        dt = time.perf_counter() - t0
        print(f"{name:<40} {m['frechet']:9.3f} {m['frechet_train']:7.3f} "
              f"{m['classes_covered']:7d} {m['class_kl']:6.3f}  {dt:7.2f}")
        if name.startswith("test split"):
            print(f"{'':<40} class fractions from {100 * min(m['class_histogram']):.1f}% to "
                  f"{100 * max(m['class_histogram']):.1f}%")
        if "classes 0-4" in name:
            missing = sorted(m["class_histogram"][5:], reverse=True)
            print(f"{'':<40} fractions predicted as the removed classes 5-9: "
                  + ", ".join(f"{100 * p:.2f}%" for p in missing))


if __name__ == "__main__":
    main()
