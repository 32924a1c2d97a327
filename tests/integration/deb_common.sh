# shellcheck shell=bash
# deb_common.sh: what the package tests share (deb_package.sh, arm64_deb.sh). Source it at the
# top level after setting TEST_NAME and defining fail REASON… (counts a failed check). Defines
#   deb_build BUILD_DIR ARCH_GLOB   skips (77) without cpack, dpkg-deb or dpkg-shlibdeps or a
#                                   CPackConfig.cmake; builds the .deb of BUILD_DIR with cpack in
#                                   a temporary directory ($tmp, removed on exit) and sets deb to
#                                   the stemd_ARCH_GLOB.deb made; exit 1 when cpack fails
#   deb_check_depends               the package's Depends names every Debian 12 runtime package
#                                   stemd links (found by dpkg-shlibdeps), without an architecture
deb_build() {
  local build=$1 glob=$2 tool
  for tool in cpack dpkg-deb dpkg-shlibdeps; do
    command -v "$tool" >/dev/null || { echo "$TEST_NAME: SKIP (no $tool; scripts/setup.sh installs dpkg-dev)"; exit 77; }
  done
  [ -f "$build/CPackConfig.cmake" ] || { echo "$TEST_NAME: SKIP (no CPackConfig.cmake in $build)"; exit 77; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/out") >"$tmp/cpack.log" 2>&1; then
    echo "$TEST_NAME: FAIL: cpack:"; cat "$tmp/cpack.log"; exit 1
  fi
  # shellcheck disable=SC2086  # the glob is meant to expand
  deb=$(ls "$tmp"/out/stemd_$glob.deb 2>/dev/null | head -n1)
  [ -n "$deb" ] || { echo "$TEST_NAME: FAIL: no stemd_$glob.deb:"; ls "$tmp/out"; cat "$tmp/cpack.log"; exit 1; }
  echo "$TEST_NAME: built $(basename "$deb") ($(stat -c %s "$deb") bytes)"
}

deb_check_depends() {
  local depends pkg
  depends=$(dpkg-deb --field "$deb" Depends)
  echo "$TEST_NAME: Depends: $depends"
  for pkg in libportaudio2 libsndfile1 liblo7 libsamplerate0 librubberband2 libsystemd0 libc6 libstdc++6; do
    tr ',' '\n' <<<"$depends" | awk '{print $1}' | grep -qxF "$pkg" || fail "Depends lacks $pkg"
  done
  # A package name with an architecture qualifier (e.g. libc6:amd64) would make it uninstallable.
  grep -q ':' <<<"$depends" && fail "Depends names an architecture: $depends"
}
