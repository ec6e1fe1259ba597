# bench_spawn: spawn-to-ready (until the worker's Hello arrives) for each trust level and for a
# plain fork+exec of the same stand-in worker (tests/sandbox/sandbox_probe.cc), in one run.

if(NOT TARGET sandbox_probe)
  add_executable(sandbox_probe ${PROJECT_SOURCE_DIR}/tests/sandbox/sandbox_probe.cc)
  target_link_libraries(sandbox_probe PRIVATE pio_sandbox pio_ipc)
  pio_target_defaults(sandbox_probe)
endif()

add_executable(bench_spawn ${CMAKE_CURRENT_LIST_DIR}/spawn_bench.cc)
target_link_libraries(bench_spawn PRIVATE pio_sandbox pio_ipc benchmark::benchmark)
target_compile_definitions(bench_spawn PRIVATE
  PIO_POLICY_DIR="${PROJECT_SOURCE_DIR}/policies"
  PIO_SANDBOX_PROBE="$<TARGET_FILE:sandbox_probe>")
add_dependencies(bench_spawn sandbox_probe)
pio_target_defaults(bench_spawn)
