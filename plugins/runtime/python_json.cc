#include "internal/python_json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <system_error>

#include "pio/ipc/check.h"

namespace pio::runtime::internal {
namespace {

void append_string(const std::string& s, std::string& out) {
  out.push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          (void)std::snprintf(buffer, sizeof(buffer), "\\u%04x", static_cast<unsigned>(c));
          out += buffer;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

// float.__repr__: the shortest digits that round-trip, positional when the decimal point falls
// within (-4, 16] of the first digit, scientific with a two-digit exponent otherwise.
void append_float(double v, std::string& out) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v < 0 ? "-Infinity" : "Infinity";
    return;
  }
  if (std::signbit(v)) {
    out.push_back('-');
    v = -v;
  }
  char buffer[64];
  const auto result =
      std::to_chars(buffer, buffer + sizeof(buffer), v, std::chars_format::scientific);
  PIO_CHECK(result.ec == std::errc());
  const std::string_view sci(buffer, static_cast<size_t>(result.ptr - buffer));
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (const char c : sci.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  int exponent = 0;
  std::from_chars(sci.data() + e_pos + 1 + (sci[e_pos + 1] == '+' ? 1 : 0), sci.data() + sci.size(),
                  exponent);
  const int decpt = exponent + 1;  // value = 0.DIGITS x 10^decpt
  const int ndigits = static_cast<int>(digits.size());
  if (decpt <= -4 || decpt > 16) {
    out.push_back(digits[0]);
    if (ndigits > 1) {
      out.push_back('.');
      out.append(digits, 1);
    }
    char exp_text[16];
    (void)std::snprintf(exp_text, sizeof(exp_text), "e%c%02d", exponent < 0 ? '-' : '+',
                        std::abs(exponent));
    out += exp_text;
  } else if (decpt <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-decpt), '0');
    out += digits;
  } else if (decpt >= ndigits) {
    out += digits;
    out.append(static_cast<size_t>(decpt - ndigits), '0');
    out += ".0";
  } else {
    out.append(digits, 0, static_cast<size_t>(decpt));
    out.push_back('.');
    out.append(digits, static_cast<size_t>(decpt));
  }
}

Status append_value(const nlohmann::ordered_json& value, int depth, std::string& out) {
  if (depth > kMaxPythonJsonDepth) {
    return invalid_argument_error("JSON value nested more than " +
                                  std::to_string(kMaxPythonJsonDepth) + " deep");
  }
  switch (value.type()) {
    case nlohmann::ordered_json::value_t::null:
    case nlohmann::ordered_json::value_t::discarded:
      out += "null";
      return ok_status();
    case nlohmann::ordered_json::value_t::boolean:
      out += value.get<bool>() ? "true" : "false";
      return ok_status();
    case nlohmann::ordered_json::value_t::number_integer:
      out += std::to_string(value.get<int64_t>());
      return ok_status();
    case nlohmann::ordered_json::value_t::number_unsigned:
      out += std::to_string(value.get<uint64_t>());
      return ok_status();
    case nlohmann::ordered_json::value_t::number_float:
      append_float(value.get<double>(), out);
      return ok_status();
    case nlohmann::ordered_json::value_t::string:
      append_string(value.get_ref<const std::string&>(), out);
      return ok_status();
    case nlohmann::ordered_json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : value) {
        if (!first) out += ", ";
        first = false;
        PIO_RETURN_IF_ERROR(append_value(item, depth + 1, out));
      }
      out.push_back(']');
      return ok_status();
    }
    case nlohmann::ordered_json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : value.items()) {
        if (!first) out += ", ";
        first = false;
        append_string(key, out);
        out += ": ";
        PIO_RETURN_IF_ERROR(append_value(item, depth + 1, out));
      }
      out.push_back('}');
      return ok_status();
    }
    case nlohmann::ordered_json::value_t::binary:
      break;
  }
  return invalid_argument_error("binary values have no JSON text form");
}

}  // namespace

Status append_python_json(const nlohmann::ordered_json& value, std::string& out) {
  return append_value(value, 0, out);
}

}  // namespace pio::runtime::internal
