#pragma once
// Where the runtime tests find their data: the real Qwen3 tokenizer files fetched by
// scripts/fetch-test-data.sh (outside git) and the reference cases under tests/data/tokenizer.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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
  static const auto* loaded = [] {
    auto result = Tokenizer::from_file(qwen3_tokenizer_dir() / "tokenizer.json");
    return result.ok() ? new Tokenizer(std::move(result).value()) : nullptr;
  }();
  EXPECT_NE(loaded, nullptr) << "cannot load " << (qwen3_tokenizer_dir() / "tokenizer.json")
                             << ": run scripts/fetch-test-data.sh (PIO_TEST_DATA_DIR="
                             << PIO_TEST_DATA_DIR << ")";
  return loaded;
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
