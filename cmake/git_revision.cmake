# Writes OUT, a header defining STEMD_GIT_REVISION from `git describe` of SRC ("unknown" outside a
# git checkout). Run at every build (src/CMakeLists.txt, target stemd_git_revision), it rewrites
# the header only when the revision changed: then options_help.cpp alone is compiled again.
execute_process(COMMAND git -C "${SRC}" describe --always --dirty --abbrev=12
                OUTPUT_VARIABLE rev OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR rev STREQUAL "")
  set(rev unknown)
endif()
set(text "// Generated at build time by cmake/git_revision.cmake.\n#define STEMD_GIT_REVISION \"${rev}\"\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
