#!/usr/bin/env bash
# The arm64 cross build's packages on a Debian 12 amd64 machine (scripts/setup.sh --arm64 runs
# this after the host packages). Idempotent; runs as root or through sudo; never asks a question.
#   - arm64 as a foreign dpkg architecture (Debian multiarch);
#   - crossbuild-essential-arm64 (aarch64-linux-gnu-gcc/g++ 12) and qemu-user (qemu-aarch64, which
#     runs the tests: cmake/toolchain-aarch64.cmake sets it as CMAKE_CROSSCOMPILING_EMULATOR, and
#     tests/CMakeLists.txt wraps stemd/stemctl for the tests that start them). Not qemu-user-binfmt:
#     binfmt_misc is the kernel's, absent in containers (CI), so nothing may rely on it;
#   - the arm64 -dev packages of the libraries stemd links, all "Multi-Arch: same", so they sit
#     beside the amd64 ones. Header-only dependencies (CLI11, Boost, nlohmann-json) come from the
#     host's packages (architecture-independent headers);
#   - liblo-dev is NOT Multi-Arch: same (bookworm 0.31-1), so liblo-dev:arm64 cannot be installed
#     beside liblo-dev:amd64. Its runtime (liblo7:arm64) is installed normally; the -dev package is
#     unpacked into $STEMD_CROSS_ROOT (default /opt/stemd-cross/aarch64), outside dpkg's files,
#     with its liblo.pc pointed there. The toolchain file adds that pkg-config directory.
set -euo pipefail
cd "$(dirname "$0")/.."

CROSS_ROOT="${STEMD_CROSS_ROOT:-/opt/stemd-cross/aarch64}"
HOST_PKGS=(crossbuild-essential-arm64 qemu-user)
ARM64_PKGS=(
  portaudio19-dev libsndfile1-dev libsystemd-dev libsamplerate0-dev librubberband-dev
  libspdlog-dev libfmt-dev libjack-jackd2-dev liblo7
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup_arm64.sh: need root or sudo to install packages" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
# Other apt users on a shared machine: wait for the dpkg lock instead of failing.
APT=(apt-get -y -q --no-install-recommends -o DPkg::Lock::Timeout=600)

updated=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup_arm64.sh: adding arm64 as a foreign architecture"
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -q -o DPkg::Lock::Timeout=600
  updated=1
fi

missing=()
for p in "${HOST_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for p in "${ARM64_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p:arm64" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p:arm64")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup_arm64.sh: installing ${missing[*]}"
  [ "$updated" = 1 ] || $SUDO apt-get update -q -o DPkg::Lock::Timeout=600
  ${SUDO:+$SUDO -E} "${APT[@]}" install "${missing[@]}"
else
  echo "setup_arm64.sh: all arm64 packages present"
fi

# liblo-dev:arm64, unpacked beside the system (see the header). Redone when the version changes.
lo_version="$(dpkg-query -W -f='${Version}' liblo7:arm64)"
stamp="$CROSS_ROOT/.liblo-dev-$lo_version"
if [ ! -e "$stamp" ]; then
  echo "setup_arm64.sh: unpacking liblo-dev:arm64 $lo_version into $CROSS_ROOT"
  tmp="$(mktemp -d)"
  chmod 755 "$tmp" # apt's _apt user downloads into it
  (cd "$tmp" && apt-get download -q "liblo-dev:arm64=$lo_version")
  $SUDO rm -rf "$CROSS_ROOT"
  $SUDO mkdir -p "$CROSS_ROOT"
  $SUDO dpkg-deb -x "$tmp"/liblo-dev_*_arm64.deb "$CROSS_ROOT"
  rm -rf "$tmp"
  libdir="$CROSS_ROOT/usr/lib/aarch64-linux-gnu"
  # The package's liblo.so is a relative link to the runtime, which lives in the system's libdir.
  target="$(readlink "$libdir/liblo.so")"
  $SUDO ln -sfn "/usr/lib/aarch64-linux-gnu/$target" "$libdir/liblo.so"
  $SUDO sed -i "s|^prefix=.*|prefix=$CROSS_ROOT/usr|" "$libdir/pkgconfig/liblo.pc"
  $SUDO touch "$stamp"
fi
echo "setup_arm64.sh: arm64 cross build ready (aarch64-linux-gnu-g++, qemu-aarch64)"
