#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages, build) and runs the whole test suite:
#   1. release build: unit, real-time tripwire, integration (render, CLI, memory), the JACK
#      real-device test, benchmark smoke run — while these run, the sanitizer presets build in the
#      background at nice 19 (prebuild_start below);
#   2. ThreadSanitizer build: the unit tests (queues, rings, loader, controller under two threads);
#   3. AddressSanitizer + UBSan build (clang, with the libFuzzer targets): unit and integration
#      tests, the bounded soak (3 simulated minutes of random OSC against engine + loader +
#      controller + router; stemd-soak), then each fuzz target for 20 s over its seed corpus, two
#      at a time (one libFuzzer process per core) — from the same build, so src/ is built three
#      times, not four (scripts/fuzz.sh runs the targets for 10 minutes each by hand, in the
#      `fuzz` preset's build).
# Options: --quick (release only), --preset NAME (one preset only; `--preset fuzz` builds the
# fuzz preset and runs its bounded fuzz tests, as the asan step does). By hand (≈ 7 min more than
# CI affords): --preset tsan-integration — the stemd binary, stemctl and the integration tests
# under ThreadSanitizer (every OSC, CLI, state, tune and reload test; a race in stemd makes it
# exit 66, failing its test). --preset arm64: the arm64 cross build (scripts/setup.sh --arm64
# installs its toolchain, libraries and qemu-user) with its unit and render/null-backend
# integration tests run under qemu-aarch64, the arm64 render compared sample for sample with the
# x86-64 release build's, and the arm64 .deb checked (docs/arm64.md). Exit status: 0 when all pass.
set -euo pipefail
cd "$(dirname "$0")/.."

# What each sanitizer preset builds (only what it runs).
sanitizer_targets() {
  case "$1" in
    tsan) echo stemd_unit_tests ;;
    # The fuzz targets are built here too (the preset sets STEMD_FUZZ; tests/fuzz/CMakeLists.txt
    # builds the layers at -O1 with libFuzzer's coverage hooks, which the other programs ignore).
    asan) echo stemd stemctl stemd_unit_tests stemd_integration_tests stemd-soak fuzz_osc_packet fuzz_osc_router \
      fuzz_sndfile_load ;;
  esac
}
presets=(release tsan asan)
case "${1:-}" in
  --targets) sanitizer_targets "$2"; exit 0 ;;  # (the background build's list: see prebuild_start)
  --quick) presets=(release) ;;
  --preset) presets=("$2") ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--quick | --preset NAME]" >&2; exit 2 ;;
esac

if [ "${presets[*]}" = arm64 ]; then scripts/setup.sh --arm64 --deps; else scripts/setup.sh --deps; fi
jobs="$(nproc)"

# Formatting is part of the suite (.clang-format at the root).
echo "=== test.sh: clang-format check"
git ls-files -z '*.cpp' '*.hpp' | xargs -0 clang-format --dry-run --Werror
# While the release tests run, the sanitizer presets build in the background (SCHED_IDLE, nice 19): the
# release tests leave a core mostly idle for ≈ 6 minutes (the JACK test bed's tests run one at a
# time, RUN_SERIAL, and a period of 1024 frames costs little), and under SCHED_IDLE the compiler
# runs only on a CPU nothing else wants (the audio threads are real-time, the tests' processes nice 0).
# When the release tests end the background build is stopped wherever it is, and each preset's
# own build goes on from there (-j"$jobs"). The benchmark guards (label bench) run before it starts:
# they compare timings within one run, which a compiler beside them would only blur.
prebuild=
prebuild_start() {
  local rest=()
  for q in "${presets[@]}"; do case "$q" in tsan | asan) rest+=("$q") ;; esac; done
  [ ${#rest[@]} -gt 0 ] || return 0
  # shellcheck disable=SC2016  # (expanded by the inner bash)
  setsid bash -c '
    for q in "$@"; do
      cmake --preset "$q" >/dev/null || exit 1
      chrt --idle 0 nice -n 19 cmake --build --preset "$q" -j2 --target $(scripts/test.sh --targets "$q") || exit 1
    done
    echo "background build done in $SECONDS s"' prebuild "${rest[@]}" >build/prebuild.log 2>&1 &
  prebuild=$!
  echo "=== test.sh: building ${rest[*]} in the background (nice 19) while the release tests run"
}
prebuild_stop() {
  [ -n "$prebuild" ] || return 0
  if kill -0 "$prebuild" 2>/dev/null; then
    kill -TERM -- "-$prebuild" 2>/dev/null
    echo "=== test.sh: background build stopped with the release tests (each preset's build goes on from there)"
  else
    echo "=== test.sh: background build ended before the release tests did" \
      "($(grep -o 'done in [0-9]* s' build/prebuild.log || echo 'stopped on an error: build/prebuild.log'))"
  fi
  wait "$prebuild" 2>/dev/null || true
  prebuild=
}
trap prebuild_stop EXIT

# How busy the machine's CPUs were since the last mark (from /proc/stat: busy = all but idle and
# iowait), printed with each step's time: a step that leaves CPUs idle is bound by waits (the JACK
# test bed plays in real time) and gains from overlap; a busy one only from less work.
cpu_last=() cpu_out=
cpu_mark() {  # sets cpu_out (", CPUs N % busy" since the last mark)
  local _ u n s i w q sq st busy idle
  read -r _ u n s i w q sq st _ </proc/stat
  busy=$((u + n + s + q + sq + st)) idle=$((i + w)) cpu_out=
  if [ ${#cpu_last[@]} -eq 2 ] && [ $((busy + idle - cpu_last[0] - cpu_last[1])) -gt 0 ]; then
    cpu_out=", CPUs $((100 * (busy - cpu_last[0]) / (busy + idle - cpu_last[0] - cpu_last[1]))) % busy"
  fi
  cpu_last=("$busy" "$idle")
}
cpu_mark
start=$SECONDS
for p in "${presets[@]}"; do
  echo "=== test.sh: preset $p (at $((SECONDS - start)) s)"
  if [ "$p" = tsan-integration ]; then
    cmake --preset tsan >/dev/null
    cmake --build --preset tsan -j"$jobs" --target stemd stemctl stemd_integration_tests
    ctest --test-dir build/tsan -L integration -LE "jack|package|alsa|pipewire" --output-on-failure --timeout 600
    continue
  fi
  if [ "$p" = arm64 ]; then
    # The x86-64 stemd whose renders the arm64 one must match (tests/integration/arm64_render.sh).
    cmake --preset release >/dev/null
    cmake --build --preset release -j"$jobs" --target stemd
    cmake --preset arm64 >/dev/null
    cmake --build --preset arm64 -j"$jobs" --target stemd stemctl man stemd_unit_tests stemd_integration_tests \
      stemd-gen-fixture
    echo "test.sh: arm64 under qemu-aarch64: unit, integration (render, CLI, OSC, state on the null" \
      "backend), the arm64-vs-x86 render and the .deb. Not the JACK tests (label jack): their test bed's" \
      "jackd is the host's amd64 one, and an emulated client cannot keep its real-time deadlines" \
      "(qemu runs stemd's audio callback ~30x slower); nor the fault/rt/soak/bench suites, which" \
      "measure real-time pacing. Left out under qemu (docs/arm64.md): one Rubber Band stretcher test" \
      "(over its 120 s timeout emulated; the arm64 render test covers the stretcher), the" \
      "kernel-drop count (qemu-user drops SO_RXQ_OVFL ancillary data) and three CLI tests whose" \
      "time bounds an emulated stemd misses (device-wait status after 1 s, watchdog pings, SIGINT" \
      "at the largest buffer), the RSS-versus-memory_bytes check (qemu's own memory is in the RSS) and" \
      "the 20-minute RSS render (over its 300 s timeout emulated; the same code is checked on x86-64)."
    qemu_skip="Stretcher.FasterEngineAlsoKeepsPitchAndDurationAtASteadyTempo|UdpTest.KernelDropsAreCounted"
    qemu_skip+="|Cli.WaitingForADeviceIsReadyWithAStatusAndAnswersOsc"
    qemu_skip+="|Cli.SystemdNotifyReadyWatchdogAndStopping|Cli.SigintAtTheLowestRateAndLargestBufferExitsPromptly"
    qemu_skip+="|LoadPath.MemoryBytesMatchesTheRssItCosts|Memory.TwentyMinuteStreamKeepsRssFlat"
    # stemctl_links reads the host's ldd and build.ninja (the release build's check); the ALSA and
    # PipeWire test-bed tests start host servers and plug-ins (amd64): release preset only.
    qemu_skip+="|stemctl_links"
    # Emulated, stemd starts in ~9 s (0.5 s native): the tests' "wait up to" bounds (readiness,
    # replies) are stretched by STEMD_TEST_TIME_SCALE; what they measure is not.
    STEMD_TEST_TIME_SCALE=${STEMD_TEST_TIME_SCALE:-10} \
    ctest --preset arm64 -j"$jobs" --timeout 600 -L "unit|integration|arm64" -LE "jack|package|alsa|pipewire" -E "$qemu_skip"
    continue
  fi
  cmake --preset "$p" >/dev/null
  if [ "$p" = fuzz ]; then
    cmake --build --preset fuzz -j"$jobs" --target fuzz_osc_packet fuzz_osc_router fuzz_sndfile_load
    ctest --test-dir build/fuzz -L fuzz -j"$jobs" --output-on-failure --timeout 300
    continue
  fi
  # Sanitizer presets build only what they run; single-threaded DSP tests (the Rubber Band
  # stretcher, seconds each) gain nothing under TSan and are left to the other presets.
  case "$p" in
    tsan)
      # shellcheck disable=SC2046
      cmake --build --preset "$p" -j"$jobs" --target $(sanitizer_targets tsan)
      filter=(-L unit -E "Stretcher") ;;
    asan)
      # shellcheck disable=SC2046
      cmake --build --preset "$p" -j"$jobs" --target $(sanitizer_targets asan)
      # The audio-server tests (JACK, PipeWire, ALSA plugins) run in the release preset only:
      # the servers' and plug-ins' own allocations are not stemd's to report.
      # The out-of-descriptors tests (accept back-off) run in the release preset only: UBSan's
      # vptr check opens a pipe for each new type it meets, and with no descriptor left it reports
      # a false "invalid vptr" (fmt's buffer, spdlog's logger: one after another).
      # Label tree: checks of the source tree that run no stemd (docs links, setup.sh's lists, the
      # revision stamp). The 256-MiB endless table (≈ 5,000 pages, 45 s under ASan): the parsing of
      # each page is the page check's, which runs here.
      filter=(-L "unit|integration|soak" -LE "jack|alsa|pipewire|tree"
        -E "OutOfDescriptors|ATableWhosePagesFollowOnButNeverEnd")
      # PortAudio's ALSA host API opens ALSA's "default" PCM at start-up; where pipewire-alsa is
      # installed (setup.sh installs it for the pipewire tests) that loads PipeWire's ALSA
      # plug-in, whose initialisation leaks when no PipeWire runs — LeakSanitizer then fails every
      # test that starts stemd with --backend portaudio/auto, on a leak in a dlopen()ed module it
      # cannot even name. The sanitizer run gives ALSA a one-PCM configuration (default = null):
      # stemd's own code is what it checks; the ALSA/PipeWire paths are the alsa/pipewire tests'.
      mkdir -p build/asan
      printf 'pcm.!default { type null }\nctl.!default { type hw card 0 }\n' >build/asan/asound-null.conf
      export ALSA_CONFIG_PATH="$PWD/build/asan/asound-null.conf" ;;
    *)
      cmake --build --preset "$p" -j"$jobs"
      filter=() ;;
  esac
  built=$SECONDS
  cpu_mark
  echo "=== test.sh: preset $p built at $((built - start)) s$cpu_out"
  # ctest: parallel, but tests marked RUN_SERIAL (the JACK test bed) run alone.
  if [ "$p" = release ]; then
    ctest --preset release -j"$jobs" --timeout 600 -L bench
    prebuild_start
    ctest --preset release -j"$jobs" --timeout 600 -LE bench
    prebuild_stop
  else
    # One test more than cores: the sanitizer steps left the CPUs idle about half the time (tsan
    # 43 %, asan 55 % busy in the pre-run of session 30: their tests wait on sockets, timers and
    # the opener threads), and their RUN_SERIAL tests still run alone.
    ctest --preset "$p" -j"$((jobs + 1))" --timeout 600 "${filter[@]}"
  fi
  if [ "$p" = asan ]; then
    # The bounded fuzz runs (label fuzz: 20 s each, wall-clock), by themselves after the tests:
    # libFuzzer is one thread, so two targets at a time each have a core to themselves.
    ctest --test-dir build/asan -L fuzz -j"$jobs" --output-on-failure --timeout 300
  fi
  cpu_mark
  echo "=== test.sh: preset $p tested in $((SECONDS - built)) s$cpu_out"
done
echo "=== test.sh: all passed in $((SECONDS - start)) s (${presets[*]})"
