# The OpenAI request parser (host/server/openai_protocol.cc): request bodies from any client of
# the HTTP server.
pio_add_fuzzer(openai_request SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/openai_request_fuzzer.cc
               LIBS pio_server)
