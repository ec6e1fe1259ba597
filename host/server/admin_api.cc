#include "admin_api.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <utility>

#include "json_text.h"
#include "pio/sandbox/policy.h"

namespace pio::server {
namespace {

using Json = nlohmann::json;

// An admin's load body holds a plugin config; deeper than this is refused while parsing (the
// text is dumped again, recursively, for the worker).
constexpr int kMaxConfigDepth = 64;

ApiError unknown_url(std::string_view path) {
  return {404, "invalid_request_error", fmt::format("no such endpoint: {}", path), std::nullopt,
          "unknown_url"};
}

ApiError method_not_allowed(std::string_view path, std::string_view method) {
  return {405, "invalid_request_error", fmt::format("{} does not take {}", path, method),
          std::nullopt, "method_not_allowed"};
}

}  // namespace

std::string plugins_list_body(const std::vector<host::PluginStatus>& plugins,
                              const host::HostConfig& config) {
  Json list = Json::array();
  for (const auto& p : plugins) {
    const auto& settings = config.settings_for(p.name);
    list.push_back({{"name", p.name},
                    {"instance", p.instance},
                    {"version", p.version},
                    {"active", p.active},
                    {"state", host::plugin_state_name(p.state)},
                    {"pid", p.pid},
                    {"trust_level", sandbox::trust_level_name(settings.trust_level)},
                    {"restarts", p.restarts},
                    {"crashes", p.crashes},
                    {"quarantined", p.state == host::PluginState::kQuarantined},
                    {"last_crash", p.last_crash}});
  }
  return json_text(Json({{"plugins", list}}));
}

std::variant<ApiError, AdminWork> route_admin(const AdminRequest& request,
                                              const std::vector<KeyHash>& admin_keys,
                                              PluginLoader load) {
  if (admin_keys.empty()) {
    return ApiError{403, "permission_error",
                    "the admin API is off: list the SHA-256 of an admin key in the host "
                    "config's server.admin_keys_sha256",
                    std::nullopt, "admin_disabled"};
  }
  if (!request.authorization.starts_with("Bearer ") ||
      !key_matches(request.authorization.substr(7), admin_keys)) {
    return ApiError{401, "invalid_request_error", "the admin API needs an admin key", std::nullopt,
                    "invalid_api_key"};
  }
  const std::string path(request.path);
  const bool get = request.method == "GET";
  const bool post = request.method == "POST";
  if (path == "/admin/plugins") {
    if (!get) return method_not_allowed(path, request.method);
    return AdminWork([](Host& host) -> Result<std::string> {
      return plugins_list_body(host.list_plugins(), host.config());
    });
  }
  // /admin/plugins/NAME/VERB
  constexpr std::string_view kPrefix = "/admin/plugins/";
  if (!path.starts_with(kPrefix)) return unknown_url(path);
  const std::string rest = path.substr(kPrefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string::npos || slash == 0) return unknown_url(path);
  const std::string name = rest.substr(0, slash);
  const std::string verb = rest.substr(slash + 1);
  if (!post) return method_not_allowed(path, request.method);
  if (verb == "load") {
    bool too_deep = false;
    auto depth = [&too_deep](int d, Json::parse_event_t event, Json&) {
      if (event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) {
        too_deep = too_deep || d > kMaxConfigDepth;
      }
      return !too_deep;
    };
    const Json body = request.body.empty()
                          ? Json::object()
                          : Json::parse(request.body.begin(), request.body.end(), depth, false);
    if (too_deep || !body.is_object() ||
        (body.contains("model_path") && !body["model_path"].is_string()) ||
        (body.contains("config") && !body["config"].is_object())) {
      return invalid_field("", fmt::format("the body is {{\"model_path\": \"...\"?, \"config\": "
                                           "{{...}}?}}, nested at most {} deep",
                                           kMaxConfigDepth));
    }
    host::ActivateOptions options;
    if (body.contains("model_path")) options.model_path = body["model_path"].get<std::string>();
    if (body.contains("config")) options.config_json = json_text(body["config"]);
    return AdminWork([name, options, load = std::move(load)](Host& host) -> Result<std::string> {
      PIO_RETURN_IF_ERROR(load(host, name, options));
      return json_text(Json({{"loaded", name}}));
    });
  }
  if (verb == "unload") {
    return AdminWork([name](Host& host) -> Result<std::string> {
      PIO_RETURN_IF_ERROR(host.deactivate_plugin(name));
      return json_text(Json({{"unloaded", name}}));
    });
  }
  if (verb == "restart") {
    return AdminWork([name](Host& host) -> Result<std::string> {
      std::vector<std::string> keys;
      for (const auto& p : host.list_plugins()) {
        if (p.name == name && p.active) {
          keys.push_back(p.instance.empty() ? p.name : p.name + "@" + p.instance);
        }
      }
      if (keys.empty()) {
        return failed_precondition_error(fmt::format("plugin \"{}\" is not loaded", name));
      }
      for (const std::string& key : keys) PIO_RETURN_IF_ERROR(host.restart_plugin(key));
      return json_text(Json({{"restarted", keys}}));
    });
  }
  return ApiError{404, "invalid_request_error",
                  fmt::format("no admin verb \"{}\" (load, unload, restart)", verb), std::nullopt,
                  "unknown_url"};
}

}  // namespace pio::server
