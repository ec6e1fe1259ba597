# bench_worker: one echo call (a small and a 1 MiB tensor infer, a 64-token streamed generation)
# through a real pio-worker child vs the same plugin code called in-process (InProcessPlugin), in
# one run. No sandbox: the sandboxed path is the host benchmark's.
add_executable(bench_worker ${CMAKE_CURRENT_LIST_DIR}/worker_bench.cc)
target_link_libraries(bench_worker PRIVATE pio_plugin_sdk pio_ipc benchmark::benchmark)
target_compile_definitions(bench_worker PRIVATE
  PIO_BENCH_WORKER_PATH="$<TARGET_FILE:pio-worker>"
  PIO_BENCH_ECHO_PLUGIN="$<TARGET_FILE:pio_plugin_echo>")
add_dependencies(bench_worker pio-worker pio_plugin_echo)
pio_target_defaults(bench_worker)
