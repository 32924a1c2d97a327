# Installs the systemd unit and the default config. Runs at install time (cmake --install, or
# CPack's staging install), because where they go depends on the prefix of *that* install, not
# the one the build was configured with: GNUInstallDirs' rule, /usr → /etc, else PREFIX/etc
# (CPack packages for /usr; `cmake --install build/release` defaults to /usr/local). The unit's
# ExecStart and --config are rewritten to match, so an install is consistent whatever its prefix.
# Set by the install(CODE) before this script: STEMD_SOURCE_DIR, STEMD_BINARY_DIR, STEMD_BINDIR,
# STEMD_DOCDIR (relative to the prefix).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" OR CMAKE_INSTALL_PREFIX STREQUAL "/usr/")
  set(_etc "/etc")
else()
  set(_etc "${CMAKE_INSTALL_PREFIX}/etc")
endif()

file(READ "${STEMD_SOURCE_DIR}/systemd/stemd.service" _unit)
string(REPLACE "/usr/bin/stemd" "${CMAKE_INSTALL_PREFIX}/${STEMD_BINDIR}/stemd" _unit "${_unit}")
string(REPLACE "/etc/stemd/stemd.conf" "${_etc}/stemd/stemd.conf" _unit "${_unit}")
string(REPLACE "/usr/share/doc/stemd/" "${CMAKE_INSTALL_PREFIX}/${STEMD_DOCDIR}/" _unit "${_unit}")
set(_staged "${STEMD_BINARY_DIR}/packaging/stemd.service")
file(WRITE "${_staged}" "${_unit}")

# file(INSTALL) prepends $DESTDIR and records the files in the install manifest.
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE FILES "${_staged}")
file(INSTALL DESTINATION "${_etc}/stemd" TYPE FILE FILES "${STEMD_SOURCE_DIR}/config/stemd.conf")

# The user unit (systemctl --user, for a session's PipeWire/JACK): PREFIX/lib/systemd/user/stemd.service.
file(READ "${STEMD_SOURCE_DIR}/systemd/stemd-user.service" _user_unit)
string(REPLACE "/usr/bin/stemd" "${CMAKE_INSTALL_PREFIX}/${STEMD_BINDIR}/stemd" _user_unit "${_user_unit}")
string(REPLACE "/usr/share/doc/stemd/" "${CMAKE_INSTALL_PREFIX}/${STEMD_DOCDIR}/" _user_unit "${_user_unit}")
file(MAKE_DIRECTORY "${STEMD_BINARY_DIR}/packaging/user")
file(WRITE "${STEMD_BINARY_DIR}/packaging/user/stemd.service" "${_user_unit}")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/user" TYPE FILE
     FILES "${STEMD_BINARY_DIR}/packaging/user/stemd.service")
