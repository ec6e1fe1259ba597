# scripts/bench.sh server: the OpenAI-compatible server's own cost over the Host (the same chat
# request through Host::chat and over HTTP, alternating) and requests/s and latency at 1, 8 and 64
# clients, on the tiny Qwen3 checkpoint (written by the pio-mkmodel library at start) through the
# qwen3_0_6b plugin in a low-trust worker.
find_package(nlohmann_json 3.10 REQUIRED)
add_executable(bench_server ${CMAKE_CURRENT_LIST_DIR}/server_bench.cc)
target_link_libraries(bench_server PRIVATE pio_server pio_host pio_model_runtime
  nlohmann_json::nlohmann_json benchmark::benchmark)
target_compile_definitions(bench_server PRIVATE
  PIO_BENCH_TOKENIZER_DIR="${PIO_TEST_DATA_DIR}/qwen3-tokenizer"
  PIO_BENCH_QWEN3_DIR="$<TARGET_FILE_DIR:pio_plugin_qwen3_0_6b>"
  PIO_BENCH_WORKER_PATH="$<TARGET_FILE:pio-worker>"
  PIO_BENCH_POLICY_DIR="${PROJECT_SOURCE_DIR}/policies")
add_dependencies(bench_server pio-worker pio_plugin_qwen3_0_6b)
pio_target_defaults(bench_server)
