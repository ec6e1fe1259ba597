# scripts/bench.sh decode: batch-1 decode and prefill of a Qwen3-0.6B-shaped random bf16
# checkpoint, against the machine's read bandwidth measured in the same run (the decode bound).
# The checkpoint (1.2 GB) is written once by the pio-mkmodel library into PIO_BENCH_DATA_DIR.
if(DEFINED ENV{PIO_BENCH_DATA_DIR})
  set(PIO_BENCH_DATA_DIR_DEFAULT $ENV{PIO_BENCH_DATA_DIR})
else()
  set(PIO_BENCH_DATA_DIR_DEFAULT ${PROJECT_SOURCE_DIR}/build/bench-data)
endif()
set(PIO_BENCH_DATA_DIR ${PIO_BENCH_DATA_DIR_DEFAULT} CACHE PATH
    "Where benchmarks keep the checkpoints they generate")
add_executable(bench_decode ${CMAKE_CURRENT_SOURCE_DIR}/decode_bench.cc)
target_link_libraries(bench_decode PRIVATE pio_model_torch pio_kernels benchmark::benchmark)
target_compile_definitions(bench_decode PRIVATE PIO_BENCH_DATA_DIR="${PIO_BENCH_DATA_DIR}")
pio_target_defaults(bench_decode)
