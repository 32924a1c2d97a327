# Cross build for arm64 (aarch64-linux-gnu: Raspberry Pi 4 with a 64-bit Raspberry Pi OS, Debian 12
# arm64) on a Debian 12 amd64 machine. scripts/setup.sh --arm64 installs what this file names:
# crossbuild-essential-arm64, qemu-user, the arm64 -dev packages (Debian multiarch, in
# /usr/lib/aarch64-linux-gnu) and liblo-dev:arm64 unpacked into /opt/stemd-cross/aarch64
# (liblo-dev is not Multi-Arch: same). Used by the `arm64` preset (CMakePresets.json).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(STEMD_CROSS_TRIPLET aarch64-linux-gnu)
if(NOT DEFINED STEMD_CROSS_ROOT)
  set(STEMD_CROSS_ROOT /opt/stemd-cross/aarch64)
endif()

set(CMAKE_C_COMPILER ${STEMD_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${STEMD_CROSS_TRIPLET}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${STEMD_CROSS_TRIPLET})

# Libraries and CMake packages: the multiarch arm64 ones under /usr (lib/aarch64-linux-gnu), the
# unpacked liblo-dev, and the cross toolchain's own root. Header-only packages (CLI11, Boost,
# nlohmann-json) are architecture-independent: their /usr/include and /usr/share/cmake files are
# the host's. Programs (help2man, dpkg-shlibdeps) are always the host's.
set(CMAKE_FIND_ROOT_PATH /usr/${STEMD_CROSS_TRIPLET} ${STEMD_CROSS_ROOT}/usr /usr)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config sees only arm64 .pc files (never the host's /usr/lib/x86_64-linux-gnu/pkgconfig).
set(ENV{PKG_CONFIG_LIBDIR}
    "/usr/lib/${STEMD_CROSS_TRIPLET}/pkgconfig:/usr/share/pkgconfig:${STEMD_CROSS_ROOT}/usr/lib/${STEMD_CROSS_TRIPLET}/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")
set(PKG_CONFIG_EXECUTABLE ${STEMD_CROSS_TRIPLET}-pkg-config CACHE FILEPATH "pkg-config for arm64")

# Tests (and gtest_discover_tests, which lists each binary's tests at build time) run the arm64
# binaries under user-mode qemu. No -L /usr/aarch64-linux-gnu: that is the cross toolchain's glibc
# (2.36-8cross1), whose loader would then be paired with libc6:arm64's libc.so.6 (2.36-9+deb12uN)
# from the multiarch directories; the binaries' /lib/ld-linux-aarch64.so.1 is libc6:arm64's own.
find_program(STEMD_QEMU_AARCH64 qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${STEMD_QEMU_AARCH64})
