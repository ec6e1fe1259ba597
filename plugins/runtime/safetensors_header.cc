#include "pio/runtime/safetensors_header.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace pio::runtime {
namespace {

using nlohmann::json;

// A header holds objects two levels deep at most ({name: {"shape": [...]}}); anything deeper is
// not a safetensors header, and refusing it early bounds the parser's work on hostile input.
constexpr int kMaxJsonDepth = 3;

// Thrown from the parser callback to stop parsing; caught in parse_json below.
struct JsonRejected : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// nlohmann keeps the last of two equal keys silently; a header that names a tensor twice is
// lying about one of them, so duplicates are refused here.
Result<json> parse_json(std::string_view text) {
  std::vector<std::set<std::string>> keys_per_object;
  json::parser_callback_t callback = [&keys_per_object](int depth, json::parse_event_t event,
                                                        json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) throw JsonRejected("JSON nested deeper than a header allows");
        if (event == json::parse_event_t::object_start) keys_per_object.emplace_back();
        break;
      case json::parse_event_t::object_end:
        keys_per_object.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!keys_per_object.back().insert(key).second) {
          throw JsonRejected(fmt::format("key \"{}\" appears twice", key));
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), callback);
  } catch (const JsonRejected& e) {
    return invalid_argument_error(fmt::format("header JSON is invalid: {}", e.what()));
  } catch (const json::exception& e) {
    return invalid_argument_error(fmt::format("header JSON is invalid: {}", e.what()));
  }
}

Result<uint64_t> read_unsigned(const json& value) {
  if (!value.is_number_unsigned()) return invalid_argument_error("not an unsigned integer");
  return value.get<uint64_t>();
}

Result<SafetensorsTensorInfo> parse_tensor(const std::string& name, const json& entry,
                                           uint64_t data_offset, uint64_t data_size) {
  auto fail = [&name](std::string what) {
    return invalid_argument_error(fmt::format("tensor \"{}\": {}", name, what));
  };
  if (name.empty()) return invalid_argument_error("a tensor has an empty name");
  if (!entry.is_object()) return fail("entry is not an object");
  for (const auto& [key, value] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return fail(fmt::format("unknown field \"{}\"", key));
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) return fail(fmt::format("field \"{}\" is missing", key));
  }

  SafetensorsTensorInfo info;
  info.name = name;
  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) return fail("\"dtype\" is not a string");
  std::optional<DType> parsed_dtype = parse_dtype(dtype.get_ref<const std::string&>());
  if (!parsed_dtype) {
    return fail(fmt::format("unknown dtype \"{}\"", dtype.get_ref<const std::string&>()));
  }
  info.dtype = *parsed_dtype;

  const json& shape = entry["shape"];
  if (!shape.is_array()) return fail("\"shape\" is not an array");
  uint64_t elements = 1;
  bool overflow = false;
  for (const json& dim : shape) {
    Result<uint64_t> size = read_unsigned(dim);
    if (!size.ok() || *size > static_cast<uint64_t>(INT64_MAX)) {
      return fail(fmt::format("\"shape\" {} holds something other than a size", shape.dump()));
    }
    info.shape.push_back(static_cast<int64_t>(*size));
    overflow = overflow || __builtin_mul_overflow(elements, *size, &elements);
  }
  uint64_t byte_length = 0;
  overflow = overflow || __builtin_mul_overflow(elements, dtype_size(info.dtype), &byte_length);
  if (overflow) {
    return fail(fmt::format("shape {} of {} has more bytes than 64 bits can count",
                            shape_to_string(info.shape), dtype_name(info.dtype)));
  }

  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    return fail(fmt::format("\"data_offsets\" {} is not [begin, end]", offsets.dump()));
  }
  const uint64_t begin = offsets[0].get<uint64_t>();
  const uint64_t end = offsets[1].get<uint64_t>();
  if (end < begin) {
    return fail(fmt::format("data_offsets [{}, {}] end before they begin", begin, end));
  }
  if (end > data_size) {
    return fail(fmt::format(
        "data_offsets [{}, {}] run past the end of the data section ({} bytes): the file is "
        "truncated or the header lies",
        begin, end, data_size));
  }
  if (end - begin != byte_length) {
    return fail(fmt::format("data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}",
                            begin, end, end - begin, shape_to_string(info.shape),
                            dtype_name(info.dtype), byte_length));
  }
  info.file_offset = data_offset + begin;
  info.byte_length = byte_length;
  if (info.file_offset % dtype_size(info.dtype) != 0) {
    return fail(
        fmt::format("data starts at file offset {}, not a multiple of the {}-byte {} "
                    "element size, so it cannot be used in place",
                    info.file_offset, dtype_size(info.dtype), dtype_name(info.dtype)));
  }
  return info;
}

Result<std::map<std::string, std::string>> parse_metadata(const json& value) {
  if (!value.is_object()) return invalid_argument_error("\"__metadata__\" is not an object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, entry] : value.items()) {
    if (!entry.is_string()) {
      return invalid_argument_error(
          fmt::format("\"__metadata__\" field \"{}\" is not a string", key));
    }
    metadata.emplace(key, entry.get<std::string>());
  }
  return metadata;
}

// The tensors must tile the data section: sorted by offset, each starts where the previous one
// ended and the last one ends at the end of the file.
Status check_tiling(const std::vector<SafetensorsTensorInfo>& tensors, uint64_t data_offset,
                    uint64_t file_size) {
  uint64_t expected = data_offset;
  const SafetensorsTensorInfo* previous = nullptr;
  for (const SafetensorsTensorInfo& t : tensors) {
    if (t.file_offset < expected) {
      PIO_CHECK(previous != nullptr);
      return invalid_argument_error(fmt::format(
          "tensor \"{}\" (data bytes [{}, {})) overlaps tensor \"{}\" (data bytes [{}, {}))",
          t.name, t.file_offset - data_offset, t.file_offset - data_offset + t.byte_length,
          previous->name, previous->file_offset - data_offset,
          previous->file_offset - data_offset + previous->byte_length));
    }
    if (t.file_offset > expected) {
      return invalid_argument_error(
          fmt::format("data bytes [{}, {}) before tensor \"{}\" belong to no tensor",
                      expected - data_offset, t.file_offset - data_offset, t.name));
    }
    expected = t.file_offset + t.byte_length;
    previous = &t;
  }
  if (expected != file_size) {
    return invalid_argument_error(
        fmt::format("the data section has {} bytes after the last tensor that belong to no tensor",
                    file_size - expected));
  }
  return ok_status();
}

Result<SafetensorsHeader> parse_unlabelled(std::span<const std::byte> file) {
  if (file.size() < 8) {
    return invalid_argument_error(fmt::format(
        "file is {} bytes, shorter than the 8-byte header length it must start with", file.size()));
  }
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) {
    header_length = (header_length << 8) | static_cast<uint8_t>(file[static_cast<size_t>(i)]);
  }
  if (header_length > kMaxSafetensorsHeaderBytes) {
    return invalid_argument_error(fmt::format("header length {} is over the {}-byte limit",
                                              header_length, kMaxSafetensorsHeaderBytes));
  }
  if (header_length > file.size() - 8) {
    return invalid_argument_error(fmt::format(
        "header length {} runs past the end of the file ({} bytes): the file is truncated or "
        "not a safetensors file",
        header_length, file.size()));
  }
  const auto* text = reinterpret_cast<const char*>(file.data() + 8);
  PIO_ASSIGN_OR_RETURN(json header, parse_json(std::string_view(text, header_length)));
  if (!header.is_object()) return invalid_argument_error("header JSON is not an object");

  SafetensorsHeader result;
  result.data_offset = 8 + header_length;
  const uint64_t data_size = file.size() - result.data_offset;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      PIO_ASSIGN_OR_RETURN(result.metadata, parse_metadata(value));
      continue;
    }
    PIO_ASSIGN_OR_RETURN(SafetensorsTensorInfo info,
                         parse_tensor(key, value, result.data_offset, data_size));
    result.tensors.push_back(std::move(info));
  }
  std::sort(result.tensors.begin(), result.tensors.end(),
            [](const SafetensorsTensorInfo& a, const SafetensorsTensorInfo& b) {
              if (a.file_offset != b.file_offset) return a.file_offset < b.file_offset;
              return a.byte_length < b.byte_length;
            });
  PIO_RETURN_IF_ERROR(check_tiling(result.tensors, result.data_offset, file.size()));
  return result;
}

}  // namespace

Result<SafetensorsHeader> parse_safetensors_header(std::span<const std::byte> file,
                                                   std::string_view file_label) {
  Result<SafetensorsHeader> header = parse_unlabelled(file);
  if (!header.ok()) {
    return header.status().with_context(fmt::format("safetensors file \"{}\"", file_label));
  }
  return header;
}

}  // namespace pio::runtime
