#pragma once
// Tenants of the HTTP server: who may call it (API keys), which models each may use, and how
// much (concurrent requests, requests and tokens per minute).
//
// The "server" section of the host config:
// {
//   "tenants": {
//     "acme": {
//       "api_keys_sha256": ["<64 hex digits: SHA-256 of the key>"],   // at least one
//       "models": ["qwen3_0_6b"],        // or ["*"] for every served model
//       "max_concurrent": 8,             // requests in flight at once (0 or absent: no limit)
//       "requests_per_minute": 600,      // (0 or absent: no limit)
//       "tokens_per_minute": 200000      // prompt + completion tokens (0 or absent: no limit)
//     }
//   },
//   "shared_plugins": ["echo"],          // one worker serves every tenant (default: each tenant
//                                        // gets its own worker of every plugin it may use)
//   "admin_keys_sha256": ["<hex>"]        // keys of the admin API (/admin/*); none: it is off
// }
// With no tenants the server is open (no key needed): the local, single-user default.
// Tenant names are also instance names (Host::activate_instance): 1-48 letters, digits, '_',
// '-', '.'.
//
// Keys are stored only as SHA-256 hashes; a presented key is hashed and compared with every stored
// hash in constant time, so neither the answer nor its timing says how close a guess was.
//
// The one thing a caller gets wrong: admit() counts a request in flight until finish() is called
// for it, exactly once, whatever happened to the request.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"

namespace pio::server {

using KeyHash = std::array<uint8_t, 32>;

struct TenantLimits {
  uint32_t max_concurrent = 0;
  uint32_t requests_per_minute = 0;
  uint64_t tokens_per_minute = 0;
};

struct Tenant {
  std::string name;
  std::vector<KeyHash> key_hashes;
  std::vector<std::string> models;  // empty with all_models
  bool all_models = false;
  TenantLimits limits;

  bool may_use(std::string_view model) const;
};

struct ServerConfig {
  std::vector<Tenant> tenants;
  std::vector<std::string> shared_plugins;
  std::vector<KeyHash> admin_keys;
};

// Parses the "server" section (HostConfig::server_json); errors name the field.
Result<ServerConfig> parse_server_config(std::string_view server_json, std::string_view source);

// Whether `key` hashes to one of `hashes` (compared with every one, in constant time).
bool key_matches(std::string_view key, const std::vector<KeyHash>& hashes);

KeyHash sha256_of(std::string_view text);

// Whether a request may start now, and if not, when to try again.
struct Admission {
  bool admitted = false;
  std::chrono::seconds retry_after{0};
  std::string why;
};

// The tenants with their live usage. Thread-safe.
class TenantTable {
 public:
  explicit TenantTable(std::vector<Tenant> tenants);

  // No tenants configured: every request is let in without a key.
  bool open() const { return tenants_.empty(); }
  // The tenant holding `api_key`, or -1. Compares against every key of every tenant.
  int authenticate(std::string_view api_key) const;
  const Tenant& tenant(int index) const { return tenants_[static_cast<size_t>(index)].tenant; }

  Admission admit(int index);
  void finish(int index, uint64_t tokens);

 private:
  struct Live {
    Tenant tenant;
    uint32_t in_flight = 0;
    double request_tokens = 0;  // token buckets, refilled continuously up to a minute's worth
    double token_budget = 0;
    std::chrono::steady_clock::time_point refilled;
  };
  void refill(Live& live);

  std::mutex mu_;
  std::vector<Live> tenants_;
};

}  // namespace pio::server
