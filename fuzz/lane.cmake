# The host's reader of a message lane whose every byte the worker controls.
pio_add_fuzzer(lane SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/lane_fuzzer.cc LIBS pio_ipc)
