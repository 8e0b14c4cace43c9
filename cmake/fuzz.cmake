# Fuzz harnesses (fuzz/TARGET.c, one LLVMFuzzerTestOneInput each).
#
# -DRUNBOOK_FUZZ=ON (clang only; scripts/fuzz.sh configures build-fuzz/ so):
#   the core is compiled with libFuzzer's coverage instrumentation and
#   ASan+UBSan (UBSan aborting), and each harness is a libFuzzer binary,
#   fuzz_TARGET; the target `fuzzers` builds them all.
# Otherwise (the normal build, any compiler): each harness is linked with
#   fuzz/replay.c into fuzz_replay_TARGET, and ctest's
#   fuzz_regressions/TARGET feeds it the committed inputs -- what the
#   fuzzers found (fuzz/regressions/TARGET) and the seeds
#   (fuzz/corpus/TARGET) -- so they run in `bash scripts/test.sh`, and
#   under ASan in RUNBOOK_SANITIZE builds, without clang.
option(RUNBOOK_FUZZ "Build the libFuzzer harnesses (clang only)" OFF)

set(RUNBOOK_FUZZ_TARGETS yaml json config scenario params redact)
set(FUZZ_DIR ${CMAKE_SOURCE_DIR}/fuzz)

if(RUNBOOK_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "RUNBOOK_FUZZ needs clang (libFuzzer): configure with CC=clang")
  endif()
  set(FUZZ_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
      -fno-omit-frame-pointer -g)
  # PUBLIC: the harnesses are compiled the same way; INTERFACE link: every
  # executable linking the core gets the sanitizers' runtimes
  target_compile_options(runbook_core PUBLIC ${FUZZ_FLAGS})
  target_link_options(runbook_core INTERFACE -fsanitize=address,undefined)
  add_custom_target(fuzzers)
  foreach(t ${RUNBOOK_FUZZ_TARGETS})
    add_executable(fuzz_${t} ${FUZZ_DIR}/${t}.c ${FUZZ_DIR}/fuzz_util.c)
    target_include_directories(fuzz_${t} PRIVATE ${FUZZ_DIR})
    target_link_libraries(fuzz_${t} PRIVATE runbook_core)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    add_dependencies(fuzzers fuzz_${t})
  endforeach()
else()
  foreach(t ${RUNBOOK_FUZZ_TARGETS})
    add_executable(fuzz_replay_${t} ${FUZZ_DIR}/${t}.c ${FUZZ_DIR}/fuzz_util.c
      ${FUZZ_DIR}/replay.c)
    target_include_directories(fuzz_replay_${t} PRIVATE ${FUZZ_DIR})
    target_link_libraries(fuzz_replay_${t} PRIVATE runbook_core)
    set(inputs)
    foreach(d regressions corpus)
      if(EXISTS ${FUZZ_DIR}/${d}/${t})
        list(APPEND inputs ${FUZZ_DIR}/${d}/${t})
      endif()
    endforeach()
    if(inputs)
      add_test(NAME fuzz_regressions/${t} COMMAND fuzz_replay_${t} ${inputs})
    endif()
  endforeach()
endif()
