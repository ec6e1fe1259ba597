# Envelope verification and tensor-descriptor validation: what the host does with every packet a
# worker sends.
pio_add_fuzzer(envelope SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/envelope_fuzzer.cc LIBS pio_ipc)
