#pragma once
// Where the runtime tests find their data: the real Qwen3 tokenizer files fetched by
// scripts/fetch-test-data.sh (outside git) and the reference cases under tests/data/tokenizer.

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "pio/runtime/tokenizer.h"

namespace pio::runtime::testing {

inline std::filesystem::path qwen3_tokenizer_dir() {
  return std::filesystem::path(PIO_TEST_DATA_DIR) / "qwen3-tokenizer";
}

inline std::filesystem::path reference_cases(const std::string& name) {
  return std::filesystem::path(PIO_REPO_TEST_DATA_DIR) / "tokenizer" / name;
}

// The real Qwen3 tokenizer, loaded once per test binary. Fails the calling test (never skips)
// when the fetched files are missing.
inline const Tokenizer* qwen3_tokenizer() {
  static const Result<Tokenizer> loaded =
      Tokenizer::from_file(qwen3_tokenizer_dir() / "tokenizer.json");
  EXPECT_TRUE(loaded.ok()) << loaded.status().to_string()
                           << "\n(run scripts/fetch-test-data.sh; PIO_TEST_DATA_DIR="
                           << PIO_TEST_DATA_DIR << ")";
  return loaded.ok() ? &loaded.value() : nullptr;
}

// One JSON object per line.
inline std::vector<nlohmann::ordered_json> read_jsonl(const std::filesystem::path& path) {
  std::vector<nlohmann::ordered_json> rows;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(nlohmann::ordered_json::parse(line));
  }
  return rows;
}

}  // namespace pio::runtime::testing

namespace pio::runtime::testing {

// Whether `text` is well-formed UTF-8 (an independent check, not the runtime's own).
inline bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (b < 0x80) {
      ++i;
      continue;
    }
    if ((b & 0xE0) == 0xC0) {
      n = 2;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      n = 3;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      n = 4;
      cp = b & 0x07;
    } else
      return false;
    if (i + n > text.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(text[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    const uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

}  // namespace pio::runtime::testing
