# safetensors_fuzzer: the safetensors header parser (plugins/runtime/safetensors_header.cc) on
# arbitrary file bytes. The parser's sources are compiled into the fuzzer itself so libFuzzer's
# coverage instrumentation reaches them.
set(PIO_RUNTIME_DIR ${PROJECT_SOURCE_DIR}/plugins/runtime)
find_package(nlohmann_json 3 REQUIRED)
pio_add_fuzzer(safetensors
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/safetensors_fuzzer.cc
          ${PIO_RUNTIME_DIR}/safetensors_header.cc
          ${PIO_RUNTIME_DIR}/safetensors_dtype.cc
  LIBS pio_ipc nlohmann_json::nlohmann_json)
target_include_directories(safetensors_fuzzer PRIVATE ${PIO_RUNTIME_DIR}/include)
