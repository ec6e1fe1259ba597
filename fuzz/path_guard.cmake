# path_guard_fuzzer: the path guard (plugin_sdk/path_guard.cc) on arbitrary requested paths, the
# host's check of what a plugin or a user asks load_model to open, and the worker's openat2.
pio_add_fuzzer(path_guard
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/path_guard_fuzzer.cc ${PROJECT_SOURCE_DIR}/plugin_sdk/path_guard.cc
  LIBS pio_ipc)
target_include_directories(path_guard_fuzzer PRIVATE ${PROJECT_SOURCE_DIR}/plugin_sdk/include)
