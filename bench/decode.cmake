# scripts/bench.sh decode: batch-1 decode and prefill of a Qwen3-0.6B-shaped random bf16
# checkpoint, against the machine's read bandwidth measured in the same run (the decode bound),
# and the same decode through the qwen3_0_6b plugin in-process vs in a sandboxed worker.
# The checkpoint (1.2 GB) is written once by the pio-mkmodel library into PIO_BENCH_DATA_DIR.
if(DEFINED ENV{PIO_BENCH_DATA_DIR})
  set(PIO_BENCH_DATA_DIR_DEFAULT $ENV{PIO_BENCH_DATA_DIR})
else()
  set(PIO_BENCH_DATA_DIR_DEFAULT ${PROJECT_SOURCE_DIR}/build/bench-data)
endif()
set(PIO_BENCH_DATA_DIR ${PIO_BENCH_DATA_DIR_DEFAULT} CACHE PATH
    "Where benchmarks keep the checkpoints they generate")
add_executable(bench_decode ${CMAKE_CURRENT_SOURCE_DIR}/decode_bench.cc)
target_link_libraries(bench_decode PRIVATE pio_model_torch pio_kernels pio_host pio_plugin_sdk
  benchmark::benchmark)
# The tokenizer the plugin runs need comes from scripts/fetch-test-data.sh (bench.sh runs it).
set(PIO_BENCH_TOKENIZER_DIR ${PIO_TEST_DATA_DIR}/qwen3-tokenizer)
target_compile_definitions(bench_decode PRIVATE
  PIO_BENCH_DATA_DIR="${PIO_BENCH_DATA_DIR}"
  PIO_BENCH_TOKENIZER_DIR="${PIO_BENCH_TOKENIZER_DIR}"
  PIO_BENCH_QWEN3_DIR="$<TARGET_FILE_DIR:pio_plugin_qwen3_0_6b>"
  PIO_BENCH_WORKER_PATH="$<TARGET_FILE:pio-worker>"
  PIO_BENCH_POLICY_DIR="${PROJECT_SOURCE_DIR}/policies")
add_dependencies(bench_decode pio-worker pio_plugin_qwen3_0_6b)
pio_target_defaults(bench_decode)
