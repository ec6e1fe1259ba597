# bench_host: the embeddable Host with echo sandboxed at low trust vs the same plugin code called
# in-process through its C entry, crash detection and recovery, a cold spawn, and the raw futex
# round trip between two processes as the baseline, all in one run.
add_executable(bench_host ${CMAKE_CURRENT_LIST_DIR}/host_bench.cc)
target_link_libraries(bench_host PRIVATE pio_host pio_plugin_sdk pio_ipc benchmark::benchmark)
target_compile_definitions(bench_host PRIVATE
  PIO_BENCH_ECHO_DIR="$<TARGET_FILE_DIR:pio_plugin_echo>"
  PIO_BENCH_WORKER_PATH="$<TARGET_FILE:pio-worker>"
  PIO_BENCH_POLICY_DIR="${PROJECT_SOURCE_DIR}/policies")
add_dependencies(bench_host pio-worker pio_plugin_echo)
pio_target_defaults(bench_host)
