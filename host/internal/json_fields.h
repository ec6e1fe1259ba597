#pragma once
// JsonFields: strict reading of one JSON object of a document the host parses (manifests, the
// host config): every read names the document and the field path in its error, and
// check_no_unknown() refuses any field nobody read, so a misspelt setting is an error rather
// than silently ignored.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"

namespace pio::host::internal {

class JsonFields {
 public:
  // `object` must outlive this; `where` is "file: field" prefix material ("echo.json",
  // "plugins.echo").
  JsonFields(const nlohmann::json& object, std::string source, std::string path);

  static Result<nlohmann::json> parse(std::string_view text, std::string_view source);
  // The object check itself: invalid_argument when `value` is not an object.
  static Status expect_object(const nlohmann::json& value, std::string_view source,
                              std::string_view path);

  Result<std::optional<std::string>> string(std::string_view key);
  Result<std::optional<bool>> boolean(std::string_view key);
  Result<std::optional<uint64_t>> unsigned_integer(std::string_view key, uint64_t max = UINT64_MAX);
  Result<std::optional<std::vector<std::string>>> string_array(std::string_view key);
  // An object member: returns a pointer into the document (nullptr when absent).
  Result<const nlohmann::json*> object(std::string_view key);
  // invalid_argument naming the first field that no call above read.
  Status check_no_unknown() const;

  Status error(std::string_view key, std::string_view what) const;
  std::string field_path(std::string_view key) const;
  const std::string& source() const { return source_; }

 private:
  const nlohmann::json* member(std::string_view key);

  const nlohmann::json& object_;
  std::string source_;
  std::string path_;
  std::set<std::string, std::less<>> seen_;
};

}  // namespace pio::host::internal
