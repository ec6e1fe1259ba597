# chat_template_fuzzer: the Qwen3 chat renderer (plugins/runtime) on arbitrary request JSON. The
# renderer's sources are compiled into the fuzzer so libFuzzer's coverage reaches them.
set(PIO_CHAT_TEMPLATE_DIR ${PROJECT_SOURCE_DIR}/plugins/runtime)
find_package(nlohmann_json 3 REQUIRED)
pio_add_fuzzer(chat_template
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/chat_template_fuzzer.cc
          ${PIO_CHAT_TEMPLATE_DIR}/chat_template_qwen3.cc ${PIO_CHAT_TEMPLATE_DIR}/python_json.cc
  LIBS pio_ipc nlohmann_json::nlohmann_json)
target_include_directories(chat_template_fuzzer PRIVATE ${PIO_CHAT_TEMPLATE_DIR}/include
                           ${PIO_CHAT_TEMPLATE_DIR})
