#!/usr/bin/env bash
# A whole GPU session in one command, for a GPU lent for a few minutes: the GPU check
# (scripts/gpu_check.py: the benchmark alone first, then the suite and the CLI run) while the
# 20-epoch GAN target runs of both presets (benchmarks/gan_recipes.py, recipe stable) train on
# the same GPU. About 6 minutes on one H200. Everything lands in $OUT, packed at the end into
# $OUT/gpu_session.tgz (summaries, logs, results JSON, 100 samples of each GAN as .npy).
#
#   OUT=/some/dir bash scripts/gpu_session.sh
#   DRY=1 EPOCHS=1 BACKEND=numpy EXTRA="--limit 256 --samples 500" bash scripts/gpu_session.sh
#
# Wheels in .whl/ (array-api-strict for the suite) are installed first when present; the full
# Fashion-MNIST and the classifier are looked up through NNSCRATCH_CACHE (default .gpucache/).
# An older tree in .before/ (mkdir .before && git archive COMMIT nnscratch | tar -x -C .before)
# is timed in the same benchmark rounds, to measure a change on the GPU (bench --before).
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export NNSCRATCH_CACHE=${NNSCRATCH_CACHE:-$PWD/.gpucache}
[ -d .before/nnscratch ] && export BENCH_BEFORE=$PWD/.before
PY=${PY:-python3}
EPOCHS=${EPOCHS:-20}; BACKEND=${BACKEND:-cupy}; EXTRA=${EXTRA:-}
(nvidia-smi -L; $PY -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)") > "$OUT/env.txt" 2>&1
DRYFLAG=""; [ "${DRY:-0}" = 1 ] && DRYFLAG="--dry-run"
# smoke test of the fused CUDA kernels (nnscratch.fused, Adam's among them, and the RNG's) on
# a few GAN steps; if it fails, the GAN runs go on with the plain-array twins
# (NNSCRATCH_FUSED=0), while the check reports the failure
SMOKE='import numpy as np, nnscratch as nn
from nnscratch.models.gan import GANTrainer
t = GANTrainer({"preset": "mlp"}, backend=nn.Backend("'"$BACKEND"'", seed=0))
x = np.random.default_rng(0).random((64, 784), dtype=np.float32)
print([float(v) for v in t.step(t.backend.asarray(x)).values()], t.sample(2).shape)'
if ! $PY -c "$SMOKE" > "$OUT/smoke.log" 2>&1; then
  export GANFUSED=0
  echo "smoke FAILED: GAN runs use the plain-array twins (NNSCRATCH_FUSED=0)" >> "$OUT/times.txt"
  NNSCRATCH_FUSED=0 $PY -c "$SMOKE" >> "$OUT/smoke.log" 2>&1
else
  export GANFUSED=1
fi
start=$(date +%s)
$PY scripts/gpu_check.py $DRYFLAG --parts bench --summary "$OUT/check_bench/summary.md" > "$OUT/check_bench.log" 2>&1
echo "bench done $(( $(date +%s) - start )) s" >> "$OUT/times.txt"
gan() {  # preset
  NNSCRATCH_FUSED=$GANFUSED $PY benchmarks/gan_recipes.py --preset "$1" --epochs "$EPOCHS" --variants stable \
      --backend "$BACKEND" --runs /tmp/gan_runs --overwrite --results "$OUT/gan_recipes_$1.json" $EXTRA \
      > "$OUT/gan_$1.log" 2>&1
  ck=/tmp/gan_runs/$1_e${EPOCHS}_stable
  for f in log.jsonl samples.png curves.png; do cp "$ck/$f" "$OUT/gan_$1_$f" 2>/dev/null; done
  NNSCRATCH_FUSED=$GANFUSED $PY -m nnscratch sample --checkpoint "$ck/checkpoint.npz" --n 100 --seed 0 \
      --backend "$BACKEND" --out "$OUT/gan_$1_samples100.npy" >> "$OUT/gan_$1.log" 2>&1
  echo "gan $1 done $(( $(date +%s) - start )) s" >> "$OUT/times.txt"
}
# keep copies of the training logs in OUT, so that a run cut by the time limit still reports
( while sleep 15; do for p in seed mlp; do
    cp /tmp/gan_runs/${p}_e${EPOCHS}_stable/log.jsonl "$OUT/gan_${p}_log.jsonl" 2>/dev/null
  done; done ) & COPIER=$!
gan seed & P1=$!
gan mlp & P2=$!
$PY scripts/gpu_check.py $DRYFLAG --parts pytest,cli --summary "$OUT/check/summary.md" > "$OUT/check.log" 2>&1
echo "check done $(( $(date +%s) - start )) s" >> "$OUT/times.txt"
wait $P1 $P2
kill $COPIER 2>/dev/null
(cd "$OUT" && tar czf gpu_session.tgz --exclude=gpu_session.tgz .)
cat "$OUT/times.txt" "$OUT/check_bench/summary.md" "$OUT/check/summary.md" 2>/dev/null
tail -n 5 "$OUT/gan_seed.log" "$OUT/gan_mlp.log"
