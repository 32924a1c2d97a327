# stemd_runnable(VAR TARGET): sets VAR to a path that runs the executable TARGET on the build
# machine, for the steps that start a built program by path (help2man for the man pages, the tests
# that spawn stemd/stemctl). Natively that is the binary itself; in a cross build (preset arm64) a
# wrapper script, PROJECT_BINARY_DIR/emulated/TARGET, that runs it through
# CMAKE_CROSSCOMPILING_EMULATOR (qemu-aarch64): CMake adds the emulator only where a target is a
# COMMAND itself, and binfmt_misc is the kernel's, so it cannot be relied on (containers, CI).
function(stemd_runnable var target)
  if(CMAKE_CROSSCOMPILING_EMULATOR)
    list(JOIN CMAKE_CROSSCOMPILING_EMULATOR " " _emu)
    set(_wrapper ${PROJECT_BINARY_DIR}/emulated/${target})
    get_property(_done GLOBAL PROPERTY STEMD_RUNNABLE_${target})  # generated once for all callers
    if(NOT _done)
      set_property(GLOBAL PROPERTY STEMD_RUNNABLE_${target} TRUE)
      file(GENERATE OUTPUT ${_wrapper} CONTENT "#!/bin/sh\nexec ${_emu} $<TARGET_FILE:${target}> \"$@\"\n"
           FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
    endif()
    set(${var} ${_wrapper} PARENT_SCOPE)
  else()
    set(${var} $<TARGET_FILE:${target}> PARENT_SCOPE)
  endif()
endfunction()
