# tokenizer_fuzzer: the tokenizer.json loader and the encode/decode paths it configures
# (plugins/runtime). The tokenizer's sources are compiled into the fuzzer itself so libFuzzer's
# coverage instrumentation reaches them.
set(PIO_TOKENIZER_DIR ${PROJECT_SOURCE_DIR}/plugins/runtime)
find_package(nlohmann_json 3 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PIO_TOKENIZER_FUZZ_PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(PIO_TOKENIZER_FUZZ_UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
set(PIO_TOKENIZER_SOURCES
  tokenizer.cc added_tokens.cc bpe_model.cc byte_level.cc pre_tokenizer.cc regex_splitter.cc
  unicode_normalizer.cc utf8.cc incremental_detokenizer.cc)
list(TRANSFORM PIO_TOKENIZER_SOURCES PREPEND ${PIO_TOKENIZER_DIR}/)
pio_add_fuzzer(tokenizer
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_fuzzer.cc ${PIO_TOKENIZER_SOURCES}
  LIBS pio_ipc nlohmann_json::nlohmann_json PkgConfig::PIO_TOKENIZER_FUZZ_PCRE2
       PkgConfig::PIO_TOKENIZER_FUZZ_UTF8PROC)
target_include_directories(tokenizer_fuzzer PRIVATE ${PIO_TOKENIZER_DIR}/include ${PIO_TOKENIZER_DIR})
