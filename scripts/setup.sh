#!/usr/bin/env bash
# Installs every package stemd needs to build, run and test on Debian 12, then builds.
# Idempotent; runs as root or through sudo; never asks a question.
#   scripts/setup.sh            install packages + release build
#   scripts/setup.sh --deps     install packages only
#   STEMD_PRESET=debug scripts/setup.sh   build another preset
#   scripts/setup.sh --arm64 [--deps]   also the arm64 cross toolchain, the arm64 (Debian
#                               multiarch) libraries and qemu-user, then build preset arm64
#                               (docs/arm64.md)
#   scripts/setup.sh --daemon [--deps]  only what the daemon and stemctl need to build (no test,
#                               benchmark or browser packages; on a Raspberry Pi building for
#                               itself), then the release preset without tests
#   scripts/setup.sh --dry-run [...]    print the packages and the build it would do; change nothing
set -euo pipefail
cd "$(dirname "$0")/.."

ARM64=0
DEPS_ONLY=0
DAEMON=0
DRY=0
for a in "$@"; do
  case "$a" in
    --deps) DEPS_ONLY=1 ;;
    --arm64) ARM64=1 ;;
    --daemon) DAEMON=1 ;;
    --dry-run) DRY=1 ;;
    *) echo "usage: scripts/setup.sh [--arm64 | --daemon] [--deps] [--dry-run]" >&2; exit 2 ;;
  esac
done
if [ "$ARM64" = 1 ] && [ "$DAEMON" = 1 ]; then
  echo "setup.sh: --arm64 and --daemon do not go together (the arm64 cross build runs its tests under qemu)" >&2
  exit 2
fi

# What the daemon and stemctl need to build and run (scripts/setup.sh --daemon installs these only).
DAEMON_PKGS=(
  build-essential cmake pkg-config ninja-build git
  # audio I/O and file decoding
  portaudio19-dev libsndfile1-dev libjack-jackd2-dev
  # sample-rate conversion and varispeed (src/engine/resampler.cpp)
  libsamplerate0-dev
  # time-stretch (src/engine/stretcher.cpp)
  librubberband-dev
  # control, logging, command line, lock-free queues
  liblo-dev liblo-tools libspdlog-dev libfmt-dev libcli11-dev libboost-dev
  # --bpm-config (the old crowdstream server's JSON movement/tempo table)
  nlohmann-json3-dev
  # --link: Ableton Link (header-only) and the standalone Asio it needs (src/control/link_session.cpp)
  ableton-link-dev libasio-dev
  # service integration
  libsystemd-dev
  # man pages from --help (help2man), the .deb (cpack -G DEB runs dpkg-shlibdeps)
  help2man dpkg-dev
)
PKGS=(
  "${DAEMON_PKGS[@]}"
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev clang-format
  # the headless real-time test bed (testbed.md)
  jackd2 jack-capture jack-tools sox procps python3
  # ALSA and PipeWire headless (issue 14): the ALSA tools (aplay -L), the headless PipeWire
  # with its JACK and ALSA client libraries (tests/integration/pipewire_play.sh, late_device.sh)
  alsa-utils pipewire pipewire-bin libspa-0.2-modules pipewire-jack pipewire-alsa
  # scripts/check_structure.sh (function lengths)
  universal-ctags
  # stemctl's zsh completion is checked with zsh -n (tests/integration/stemctl_completion.sh)
  zsh
  # the web monitor's browser test (tests/browser): headless Chromium driven by playwright-core
  chromium
  # benchmarks only: scsynth beside stemd in scripts/bench.sh (no test depends on it)
  supercollider-server
)

[ "$DAEMON" = 1 ] && PKGS=("${DAEMON_PKGS[@]}")
PRESET="${STEMD_PRESET:-release}"
CMAKE_EXTRA=()
[ "$DAEMON" = 1 ] && CMAKE_EXTRA=(-DSTEMD_BUILD_TESTS=OFF)
if [ "$DRY" = 1 ]; then
  echo "packages: ${PKGS[*]}"
  if [ "$DAEMON" = 0 ]; then echo "then: nodejs (unless node is present); playwright-core into tests/browser (tests/browser/fetch_modules.py)"; fi
  if [ "$DEPS_ONLY" = 0 ]; then
    if [ "$ARM64" = 1 ]; then echo "build: cmake --preset arm64"; else echo "build: cmake --preset $PRESET ${CMAKE_EXTRA[*]}"; fi
  fi
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup.sh: need root or sudo to install packages" >&2; exit 1; fi
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # jackd2 otherwise asks whether to enable real-time limits.
  echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -q
  ${SUDO:+$SUDO -E} apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup.sh: all packages present"
fi
if [ "$DAEMON" = 0 ]; then
  # Node.js for the browser test (tests/browser), from Debian unless a node is already installed
  # (a NodeSource nodejs, say). Not npm: Debian's npm brings ~250 node-* packages (80 s of a fresh
  # machine's setup, docs/testing.md) to fetch one tarball; fetch_modules.py fetches
  # playwright-core as pinned by tests/browser/package-lock.json (sha512 checked) and no browser.
  if ! command -v node >/dev/null 2>&1; then
    ${SUDO:+$SUDO -E} env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs
  fi
  if [ ! -d tests/browser/node_modules/playwright-core ] ||
     [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
    python3 tests/browser/fetch_modules.py tests/browser
  fi
fi

if [ "$ARM64" = 1 ]; then
  scripts/setup_arm64.sh
  [ "$DEPS_ONLY" = 1 ] && exit 0
  cmake --preset arm64 >/dev/null
  cmake --build --preset arm64 -j"$(nproc)"
  echo "setup.sh: built preset 'arm64' in build/arm64"
  exit 0
fi

[ "$DEPS_ONLY" = 1 ] && exit 0

cmake --preset "$PRESET" "${CMAKE_EXTRA[@]}" >/dev/null
cmake --build --preset "$PRESET" -j"$(nproc)"
echo "setup.sh: built preset '$PRESET' in build/$PRESET${CMAKE_EXTRA:+ (the daemon and stemctl; no tests)}"
