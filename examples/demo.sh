#!/usr/bin/env bash
# The whole ctglip pipeline as a user runs it, on generated data (no downloads, no GPU):
# synth (train + test, different seeds) -> segment --engine import -> parse-reports -> cache
# -> pretrain grounded and global (same encoder, same budget) -> zeroshot on the test split
# -> a results table (demo/results.md). DEMO_SIZE=small|full (ci: a handful of scans, one epoch, for the
# test suite's end-to-end check of the contracts between the stages); ENCODER=cnn|vit.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${DEMO_SIZE:-small}
ENCODER=${ENCODER:-cnn}
OUT=${DEMO_DIR:-demo}
case "$SIZE" in
  ci)    TRAIN=6; TEST=3; TRAIN_OPTS=(--epochs 1 --batch-size 4) ;;
  small) TRAIN=60; TEST=40; TRAIN_OPTS=(--batch-size 32) ;;  # 54 training scans: global needs a batch <= 54
  full)  TRAIN=200; TEST=100; TRAIN_OPTS=() ;;                # the README's protocol: every training default
  *) echo "DEMO_SIZE must be ci, small or full, got $SIZE" >&2; exit 2 ;;
esac
WORKERS=${WORKERS:-2}
CACHE_OPTS=(--spacing 3 3 3 --crop-size 32 --volume-size 64 --margin-mm 12 --workers "$WORKERS")

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

for split in train test; do
  if [ "$split" = train ]; then n=$TRAIN; seed=1; else n=$TEST; seed=2; fi
  step "synth $split ($n scans, seed $seed)"
  ctglip synth -o "$OUT/$split" --n-scans "$n" --seed "$seed" --workers "$WORKERS"
  step "segment $split (import the generated masks)"
  ctglip segment "$OUT/$split/ct" -o "$OUT/$split/segmentations" --engine import --from "$OUT/$split/masks"
done

step "parse-reports (train)"
ctglip parse-reports "$OUT/train/reports.csv" -o "$OUT/train/parsed"
step "cache (train)"
ctglip cache --ct-dir "$OUT/train/ct" --masks-dir "$OUT/train/segmentations" \
  --reports-dir "$OUT/train/parsed" -o "$OUT/train/cache" "${CACHE_OPTS[@]}"

for mode in grounded global; do
  step "pretrain $mode ($ENCODER, ${TRAIN_OPTS[*]:-preset defaults})"
  ctglip pretrain "$OUT/train/cache" -o "$OUT/runs/$mode-$ENCODER" --mode "$mode" --encoder "$ENCODER" \
    --config tiny "${TRAIN_OPTS[@]}" --device cpu
  step "zeroshot $mode on the test split"
  ctglip zeroshot "$OUT/runs/$mode-$ENCODER/final.pt" --ct-dir "$OUT/test/ct" \
    --masks-dir "$OUT/test/segmentations" --labels "$OUT/test/labels.csv" \
    --abnormalities "$OUT/test/abnormalities.json" -o "$OUT/zeroshot/$mode-$ENCODER" --overwrite
done

SHARED=../shared/data/totalsegmentator_example
if [ -f "$SHARED/example_ct_sm.nii.gz" ]; then
  step "real anatomy: import + cache on the TotalSegmentator example in $SHARED"
  REAL="$OUT/real_example"
  mkdir -p "$REAL/ct" "$REAL/src"
  cp "$SHARED/example_ct_sm.nii.gz" "$REAL/ct/ts_example.nii.gz"
  cp "$SHARED/example_seg.nii.gz" "$REAL/src/ts_example.nii.gz"
  # An illustrative report written for this demo (the example ships without one).
  printf '%s\n' 'scan_id,findings,impression' \
    'ts_example,"Liver parenchyma density is normal. No focal hepatic lesion. Spleen and pancreas are unremarkable. Both kidneys are normal in size. No renal calculi.","No acute abdominal abnormality."' \
    > "$REAL/reports.csv"
  ctglip segment "$REAL/ct" -o "$REAL/segmentations" --engine import --from "$REAL/src"
  ctglip parse-reports "$REAL/reports.csv" -o "$REAL/parsed"
  ctglip cache --ct-dir "$REAL/ct" --masks-dir "$REAL/segmentations" --reports-dir "$REAL/parsed" \
    -o "$REAL/cache" --crop-size 64
else
  step "real anatomy: $SHARED not found (only on the project's machines); skipping import + cache on it"
fi

step "results"
python examples/summarize.py "$OUT" --encoder "$ENCODER"
