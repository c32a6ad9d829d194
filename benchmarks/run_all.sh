#!/usr/bin/env bash
# Run every benchmark at a small size (a few minutes on 2 CPU cores) and print one table of their
# headline figures; full logs go to $BENCH_LOGS (default: a temp folder, printed at the end).
# Larger runs: call the scripts themselves (see each one's --help). PYTHON picks the interpreter;
# BENCH_ONLY="startup cache" runs only the named ones.
set -uo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
ONLY=${BENCH_ONLY:-}
LOGS=${BENCH_LOGS:-$(mktemp -d -t ctglip-bench.XXXXXX)}
mkdir -p "$LOGS"
declare -a NAMES HEADLINES

# name | command | grep pattern of its headline line
run() {
  local name=$1 pattern=$2; shift 2
  [[ -n $ONLY && " $ONLY " != *" $name "* ]] && return
  local log="$LOGS/$name.log" started=$SECONDS headline
  echo "== $name: $*" >&2
  if "$@" >"$log" 2>&1; then
    headline=$(grep -E -- "$pattern" "$log" | tail -1 | sed -E 's/^ +//')
    headline=${headline:-"(no headline line matched '$pattern'; see $log)"}
  else
    headline="FAILED (exit $?); see $log"
  fi
  NAMES+=("$name ($((SECONDS - started)) s)")
  HEADLINES+=("$headline")
}

run startup "^ratio" "$PYTHON" bench_startup.py --repeats 3
run synth "^ratio" "$PYTHON" bench_synth.py --n-scans 12 --workers 2 --baseline-scans 4 --sparsity-scans 2
run parse-reports "^ratio" "$PYTHON" bench_parse_reports.py --reports 300 --workers 2
run cache "^ratio" "$PYTHON" bench_cache.py --n-scans 4 --limit 4
run pretrain-cpu "^tiny preset" "$PYTHON" bench_pretrain_cpu.py --scans 12 --steps 2 --batch-size 16
run zeroshot "s/scan" "$PYTHON" bench_zeroshot.py --scans 4
run hu-check "^check of a" "$PYTHON" bench_hu_check.py --synth-scans 2
run ctrate-costs "x a plain nibabel" "$PYTHON" bench_ctrate_costs.py --in-plane 256 --slices 40 60 --crop-sizes 64
if [[ -n $ONLY && " $ONLY " != *" gpu-pretrain "* ]]; then
  :
elif "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  run gpu-pretrain "^target" "$PYTHON" gpu_pretrain.py --scans 24 --steps 5 --warmup 2
else
  NAMES+=("gpu-pretrain"); HEADLINES+=("skipped: no CUDA GPU")
fi

printf '\n%-28s %s\n' "benchmark (wall time)" "headline figure"
printf '%-28s %s\n' "----------------------------" "---------------"
failed=0
for i in "${!NAMES[@]}"; do
  printf '%-28s %s\n' "${NAMES[$i]}" "${HEADLINES[$i]}"
  [[ ${HEADLINES[$i]} == FAILED* ]] && failed=1
done
echo "full logs: $LOGS"
exit $failed
