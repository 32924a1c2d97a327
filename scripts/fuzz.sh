#!/usr/bin/env bash
# The local fuzzing campaign (issue 6 "Soak and fuzz"): builds the `fuzz` preset (clang,
# libFuzzer, ASan + recoverable UBSan, so tests/fuzz/ubsan.supp applies; CI's bounded runs use
# the asan preset's build instead) and runs each fuzz target for SECONDS with one libFuzzer job
# per core, then prints executions, exec/s, coverage, corpus size and any crash files per target.
#
#   scripts/fuzz.sh                 10 minutes per target, all targets
#   scripts/fuzz.sh 180             3 minutes per target
#   scripts/fuzz.sh 60 fuzz_osc_router
#   JOBS=1 scripts/fuzz.sh 60       one job (default: nproc)
#   STEMD_FUZZ_STRICT=1 scripts/fuzz.sh 60   known findings crash again (checking a fix)
#   FUZZ_BUILD_DIR=build/mine scripts/fuzz.sh 60   another build directory (default build/fuzz;
#                                  configured with the fuzz preset: not build/asan, whose cache
#                                  that would rewrite)
#
# Work dirs (corpus grows across runs, seeded from tests/fuzz/corpus; crash files, logs):
#   build/fuzz/fuzz-run/<target>/{corpus,artifacts,logs}
# Exit status: 0 when no target left a crash/leak/timeout/oom file in this run, 1 otherwise.
# Reproduce a crash:  build/fuzz/tests/fuzz/<target> <crash-file>   (with the env below)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

SECONDS_PER_TARGET="${1:-600}"
shift || true
TARGETS=("$@")
[ "${#TARGETS[@]}" -eq 0 ] && TARGETS=(fuzz_osc_packet fuzz_osc_router fuzz_sndfile_load)
JOBS="${JOBS:-$(nproc)}"
build="${FUZZ_BUILD_DIR:-build/fuzz}"

cmake --preset fuzz -B "$build" >/dev/null
cmake --build "$build" --target "${TARGETS[@]}"

export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$root/tests/fuzz/ubsan.supp"
export LSAN_OPTIONS="suppressions=$root/tests/fuzz/lsan.supp"

seed_of() { case "$1" in fuzz_sndfile_load) echo sndfile ;; *) echo osc ;; esac; }
dict_of() { case "$1" in fuzz_sndfile_load) echo sndfile.dict ;; *) echo osc.dict ;; esac; }

summary=()
status=0
echo "fuzz.sh: ${#TARGETS[@]} target(s), ${SECONDS_PER_TARGET} s each, $JOBS job(s); $(nproc) cores, $(uname -m), $(clang --version | head -1)"
for t in "${TARGETS[@]}"; do
  work="$root/$build/fuzz-run/$t"
  mkdir -p "$work/corpus" "$work/artifacts" "$work/logs"
  cp -n "$root/tests/fuzz/corpus/$(seed_of "$t")/"* "$work/corpus/" 2>/dev/null || true
  rm -f "$work/logs/"*.log
  before=$(ls "$work/artifacts" | wc -l)
  echo "fuzz.sh: $t for ${SECONDS_PER_TARGET} s ($(ls "$work/corpus" | wc -l) corpus files)…"
  set +e
  (cd "$work/logs" && "$root/$build/tests/fuzz/$t" \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 \
      -jobs="$JOBS" -workers="$JOBS" -dict="$root/tests/fuzz/$(dict_of "$t")" \
      -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/logs/driver.log" 2>&1)
  set -e
  # Each job logs to fuzz-N.log; libFuzzer prints stat:: lines at exit (-print_final_stats).
  execs=$(cat "$work"/logs/fuzz-*.log 2>/dev/null | awk '/stat::number_of_executed_units/ {s+=$2} END {print s+0}')
  rate=$(cat "$work"/logs/fuzz-*.log 2>/dev/null | awk '/stat::average_exec_per_sec/ {s+=$2} END {print s+0}')
  cov=$(cat "$work"/logs/fuzz-*.log 2>/dev/null | grep -o 'cov: [0-9]*' | awk '{if ($2>m) m=$2} END {print m+0}')
  ft=$(cat "$work"/logs/fuzz-*.log 2>/dev/null | grep -o 'ft: [0-9]*' | awk '{if ($2>m) m=$2} END {print m+0}')
  notes=$(cat "$work"/logs/fuzz-*.log 2>/dev/null | grep -c 'note:' || true)
  crashes=$(( $(ls "$work/artifacts" | wc -l) - before ))
  corpus=$(ls "$work/corpus" | wc -l)
  line="$t: ${execs} executions, ${rate} exec/s (all jobs), cov ${cov} edges, ft ${ft}, corpus ${corpus}, new crash files ${crashes}, known-finding notes ${notes}"
  summary+=("$line")
  echo "fuzz.sh: $line"
  if [ "$crashes" -gt 0 ]; then
    status=1
    ls -t "$work/artifacts" | head -n "$crashes" | sed "s|^|  $work/artifacts/|"
    grep -h -m1 -E 'ERROR:|invariant violated|runtime error' "$work"/logs/fuzz-*.log | sort | uniq -c | head || true
  fi
done
echo
echo "fuzz.sh summary (${SECONDS_PER_TARGET} s per target, $JOBS jobs, $(date -u +%Y-%m-%dT%H:%MZ)):"
printf '  %s\n' "${summary[@]}"
exit $status
