#include "tenants.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>

namespace pio::server {
namespace {

using Json = nlohmann::json;

Status field_error(std::string_view source, const std::string& path, std::string_view what) {
  return invalid_argument_error(fmt::format("{}: server.{}: {}", source, path, what));
}

Result<KeyHash> parse_hash(const Json& value, std::string_view source, const std::string& path) {
  if (!value.is_string() || value.get_ref<const std::string&>().size() != 64) {
    return field_error(source, path, "expected 64 hex digits (the SHA-256 of the key)");
  }
  KeyHash hash{};
  const std::string& hex = value.get_ref<const std::string&>();
  for (size_t i = 0; i < 32; ++i) {
    auto nibble = [&](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return field_error(source, path, "not a hex digit in the hash");
    hash[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return hash;
}

Result<uint64_t> parse_limit(const Json& tenant, const char* key, uint64_t max,
                             std::string_view source, const std::string& path) {
  if (!tenant.contains(key) || tenant[key].is_null()) return uint64_t{0};
  const Json& v = tenant[key];
  if (!v.is_number_unsigned() || v.get<uint64_t>() > max) {
    return field_error(source, path + "." + key,
                       fmt::format("expected an integer from 0 (no limit) to {}", max));
  }
  return v.get<uint64_t>();
}

}  // namespace

bool Tenant::may_use(std::string_view model) const {
  return all_models || std::find(models.begin(), models.end(), model) != models.end();
}

KeyHash sha256_of(std::string_view text) {
  KeyHash hash{};
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), hash.data(), &length, EVP_sha256(), nullptr);
  return hash;
}

Result<ServerConfig> parse_server_config(std::string_view server_json, std::string_view source) {
  const Json doc = Json::parse(server_json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return invalid_argument_error(fmt::format("{}: \"server\" must be an object", source));
  }
  for (const auto& [key, value] : doc.items()) {
    if (key != "tenants" && key != "shared_plugins" && key != "admin_keys_sha256") {
      return field_error(source, key,
                         "unknown field (the server section has tenants, shared_plugins, "
                         "admin_keys_sha256)");
    }
  }
  ServerConfig config;
  if (doc.contains("shared_plugins")) {
    if (!doc["shared_plugins"].is_array()) {
      return field_error(source, "shared_plugins", "expected an array of plugin names");
    }
    for (const Json& name : doc["shared_plugins"]) {
      if (!name.is_string()) return field_error(source, "shared_plugins", "expected strings");
      config.shared_plugins.push_back(name.get<std::string>());
    }
  }
  if (doc.contains("admin_keys_sha256")) {
    if (!doc["admin_keys_sha256"].is_array()) {
      return field_error(source, "admin_keys_sha256", "expected an array of SHA-256 hashes");
    }
    for (size_t i = 0; i < doc["admin_keys_sha256"].size(); ++i) {
      PIO_ASSIGN_OR_RETURN(KeyHash h, parse_hash(doc["admin_keys_sha256"][i], source,
                                                 fmt::format("admin_keys_sha256[{}]", i)));
      config.admin_keys.push_back(h);
    }
  }
  std::vector<Tenant>& tenants = config.tenants;
  if (!doc.contains("tenants")) return config;
  if (!doc["tenants"].is_object()) return field_error(source, "tenants", "expected an object");
  for (const auto& [name, value] : doc["tenants"].items()) {
    const std::string path = "tenants." + name;
    const bool valid_name =
        !name.empty() && name.size() <= 48 && std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        });
    if (!valid_name) {
      return field_error(source, path, "a tenant name is 1-48 letters, digits, '_', '-' or '.'");
    }
    if (!value.is_object()) return field_error(source, path, "expected an object");
    for (const auto& [key, ignored] : value.items()) {
      if (key != "api_keys_sha256" && key != "models" && key != "max_concurrent" &&
          key != "requests_per_minute" && key != "tokens_per_minute") {
        return field_error(source, fmt::format("{}.{}", path, key), "unknown field");
      }
    }
    Tenant t;
    t.name = name;
    if (!value.contains("api_keys_sha256") || !value["api_keys_sha256"].is_array() ||
        value["api_keys_sha256"].empty()) {
      return field_error(source, path + ".api_keys_sha256",
                         "expected a non-empty array of SHA-256 hashes of the tenant's keys");
    }
    for (size_t i = 0; i < value["api_keys_sha256"].size(); ++i) {
      PIO_ASSIGN_OR_RETURN(KeyHash h, parse_hash(value["api_keys_sha256"][i], source,
                                                 fmt::format("{}.api_keys_sha256[{}]", path, i)));
      t.key_hashes.push_back(h);
    }
    if (!value.contains("models") || !value["models"].is_array() || value["models"].empty()) {
      return field_error(source, path + ".models",
                         "expected a non-empty array of model names (or [\"*\"])");
    }
    for (const Json& m : value["models"]) {
      if (!m.is_string() || m.get_ref<const std::string&>().empty()) {
        return field_error(source, path + ".models", "every model must be a non-empty string");
      }
      if (m == "*") {
        t.all_models = true;
      } else {
        t.models.push_back(m.get<std::string>());
      }
    }
    PIO_ASSIGN_OR_RETURN(uint64_t concurrent,
                         parse_limit(value, "max_concurrent", 1u << 20, source, path));
    PIO_ASSIGN_OR_RETURN(uint64_t rpm,
                         parse_limit(value, "requests_per_minute", 1u << 30, source, path));
    PIO_ASSIGN_OR_RETURN(uint64_t tpm,
                         parse_limit(value, "tokens_per_minute", uint64_t{1} << 40, source, path));
    t.limits = {static_cast<uint32_t>(concurrent), static_cast<uint32_t>(rpm), tpm};
    tenants.push_back(std::move(t));
  }
  // A key shared by two tenants would make authentication ambiguous.
  for (size_t a = 0; a < tenants.size(); ++a) {
    for (size_t b = a + 1; b < tenants.size(); ++b) {
      for (const KeyHash& x : tenants[a].key_hashes) {
        for (const KeyHash& y : tenants[b].key_hashes) {
          if (x == y) {
            return field_error(source, "tenants",
                               fmt::format("tenants \"{}\" and \"{}\" share an API key",
                                           tenants[a].name, tenants[b].name));
          }
        }
      }
    }
  }
  return config;
}

bool key_matches(std::string_view key, const std::vector<KeyHash>& hashes) {
  const KeyHash presented = sha256_of(key);
  bool found = false;
  for (const KeyHash& h : hashes) {
    found = (CRYPTO_memcmp(h.data(), presented.data(), h.size()) == 0) || found;
  }
  return found;
}

TenantTable::TenantTable(std::vector<Tenant> tenants) {
  const auto now = std::chrono::steady_clock::now();
  for (Tenant& t : tenants) {
    Live live;
    live.request_tokens = t.limits.requests_per_minute;
    live.token_budget = static_cast<double>(t.limits.tokens_per_minute);
    live.refilled = now;
    live.tenant = std::move(t);
    tenants_.push_back(std::move(live));
  }
}

int TenantTable::authenticate(std::string_view api_key) const {
  const KeyHash presented = sha256_of(api_key);
  int found = -1;
  // Every stored hash is compared, whatever matched earlier: the time taken does not depend on
  // which tenant (if any) the key belongs to.
  for (size_t i = 0; i < tenants_.size(); ++i) {
    for (const KeyHash& h : tenants_[i].tenant.key_hashes) {
      const bool same = CRYPTO_memcmp(h.data(), presented.data(), h.size()) == 0;
      found = same ? static_cast<int>(i) : found;
    }
  }
  return found;
}

void TenantTable::refill(Live& live) {
  const auto now = std::chrono::steady_clock::now();
  const double minutes = std::chrono::duration<double>(now - live.refilled).count() / 60.0;
  live.refilled = now;
  const TenantLimits& l = live.tenant.limits;
  live.request_tokens = std::min<double>(l.requests_per_minute,
                                         live.request_tokens + minutes * l.requests_per_minute);
  live.token_budget =
      std::min<double>(static_cast<double>(l.tokens_per_minute),
                       live.token_budget + minutes * static_cast<double>(l.tokens_per_minute));
}

Admission TenantTable::admit(int index) {
  std::lock_guard lock(mu_);
  Live& live = tenants_[static_cast<size_t>(index)];
  const TenantLimits& l = live.tenant.limits;
  refill(live);
  auto wait_for = [](double missing, double per_minute) {
    const double seconds = per_minute > 0 ? std::ceil(missing / per_minute * 60.0) : 1.0;
    return std::chrono::seconds(std::max<int64_t>(1, static_cast<int64_t>(seconds)));
  };
  if (l.max_concurrent > 0 && live.in_flight >= l.max_concurrent) {
    return {false, std::chrono::seconds(1),
            fmt::format("tenant \"{}\" has {} requests in flight, its limit", live.tenant.name,
                        l.max_concurrent)};
  }
  if (l.requests_per_minute > 0 && live.request_tokens < 1.0) {
    return {false, wait_for(1.0 - live.request_tokens, l.requests_per_minute),
            fmt::format("tenant \"{}\" is over its {} requests per minute", live.tenant.name,
                        l.requests_per_minute)};
  }
  if (l.tokens_per_minute > 0 && live.token_budget <= 0.0) {
    return {false, wait_for(1.0 - live.token_budget, static_cast<double>(l.tokens_per_minute)),
            fmt::format("tenant \"{}\" is over its {} tokens per minute", live.tenant.name,
                        l.tokens_per_minute)};
  }
  if (l.requests_per_minute > 0) live.request_tokens -= 1.0;
  ++live.in_flight;
  return {true, std::chrono::seconds(0), {}};
}

void TenantTable::finish(int index, uint64_t tokens) {
  std::lock_guard lock(mu_);
  Live& live = tenants_[static_cast<size_t>(index)];
  refill(live);
  if (live.in_flight > 0) --live.in_flight;
  // Tokens are known only at the end: the budget may go below zero, which holds the tenant's next
  // requests back until it has refilled.
  if (live.tenant.limits.tokens_per_minute > 0) live.token_budget -= static_cast<double>(tokens);
}

}  // namespace pio::server
