# model_config_fuzzer: the parsers of a checkpoint's JSON files (config.json,
# generation_config.json, model.safetensors.index.json; plugins/runtime/model_config.cc,
# generation_config.cc, checkpoint.cc) on arbitrary bytes, compiled into the fuzzer so that
# coverage instrumentation reaches them.
set(PIO_RUNTIME_DIR ${PROJECT_SOURCE_DIR}/plugins/runtime)
find_package(nlohmann_json 3 REQUIRED)
pio_add_fuzzer(model_config
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/model_config_fuzzer.cc
          ${PIO_RUNTIME_DIR}/model_config.cc
          ${PIO_RUNTIME_DIR}/generation_config.cc
          ${PIO_RUNTIME_DIR}/checkpoint_json.cc
          ${PIO_RUNTIME_DIR}/checkpoint.cc
          ${PIO_RUNTIME_DIR}/safetensors_file.cc
          ${PIO_RUNTIME_DIR}/safetensors_header.cc
          ${PIO_RUNTIME_DIR}/safetensors_dtype.cc
  LIBS pio_ipc nlohmann_json::nlohmann_json)
target_include_directories(model_config_fuzzer PRIVATE ${PIO_RUNTIME_DIR}/include ${PIO_RUNTIME_DIR})
