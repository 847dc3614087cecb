#!/usr/bin/env bash
# Gets this checkout ready for scripts/gpu_session.sh on a GPU machine without network, in the
# three folders that travel with it (ignored by git, about 35 MB together):
#   .whl/       the wheels of array-api-strict and array-api-compat (the suite's third backend)
#   .gpucache/  the full Fashion-MNIST (Debian's dataset-fashion-mnist) and the trained
#               classifier of the Frechet distance (trained here if missing, about 2 minutes)
#   .before/    the nnscratch package of BASE (default 61d35de, the last commit before the
#               fused kernels; name the commit before the change to be measured), timed in
#               the same benchmark rounds as the tree itself
#
#   bash scripts/gpu_prepare.sh [BASE]
# then, on the device: OUT=$OUT bash scripts/gpu_session.sh, carrying .whl .gpucache .before.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-61d35de}
PY=${PY:-.venv/bin/python}
mkdir -p .whl .gpucache/fashion-mnist .gpucache/classifiers
if ! ls .whl/array_api_strict-*.whl >/dev/null 2>&1; then
  "$PY" -m pip download -q --no-deps -d .whl array-api-strict array-api-compat
fi
FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -f "$FMNIST/train-images-idx3-ubyte.gz" ]; then
  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
cp -u "$FMNIST"/*-ubyte.gz .gpucache/fashion-mnist/
# the classifier the evaluation uses: from the user's cache, else trained into .gpucache
CLF=$(ls "${NNSCRATCH_CACHE:-$HOME/.cache/nnscratch}"/classifiers/fashion-mnist_*.npz \
      2>/dev/null | head -n 1 || true)
if [ -n "$CLF" ]; then
  cp -u "$CLF" .gpucache/classifiers/
else
  NNSCRATCH_CACHE=$PWD/.gpucache NNSCRATCH_DATA_DIR=$FMNIST "$PY" -c \
    "from nnscratch.metrics.classifier import get_classifier; get_classifier('fashion-mnist')"
fi
rm -rf .before && mkdir -p .before && git archive "$BASE" nnscratch | tar -x -C .before
du -sh .whl .gpucache .before
