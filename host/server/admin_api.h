#pragma once
// The admin API (/admin/*), behind an admin key:
//   GET  /admin/plugins                every plugin and worker: state, pid, trust level, restarts,
//                                      crashes, quarantine, last crash
//   POST /admin/plugins/NAME/load      {"model_path"?, "config"?}: activate (and the tenants'
//                                      workers of it)
//   POST /admin/plugins/NAME/unload    deactivate it and its tenants' workers
//   POST /admin/plugins/NAME/restart   restart its workers (a quarantined plugin too)
//
// route_admin decides on the network thread (key, path, body) and returns either the error to
// answer at once or the work, which blocks on the Host and so runs on a request thread.
//
// The one thing a caller gets wrong: the plugins list carries strings from workers (the last
// crash's stderr tail), so it is built with json_text and can hold U+FFFD where a worker wrote
// bytes that are not UTF-8.

#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "openai_protocol.h"
#include "pio/host/host.h"
#include "pio/ipc/status.h"
#include "tenants.h"

namespace pio::server {

struct AdminRequest {
  std::string_view path;
  std::string_view method;  // "GET", "POST", ...
  std::string_view authorization;
  std::string_view body;
};

// Runs on a request thread; its text is the JSON body of the 200 answer.
using AdminWork = std::function<Result<std::string>(Host&)>;
// What loading a plugin means for the server (activating it, and each tenant's worker of it).
using PluginLoader = std::function<Status(Host&, const std::string& name, host::ActivateOptions)>;

std::variant<ApiError, AdminWork> route_admin(const AdminRequest& request,
                                              const std::vector<KeyHash>& admin_keys,
                                              PluginLoader load);

// The body of GET /admin/plugins.
std::string plugins_list_body(const std::vector<host::PluginStatus>& plugins,
                              const host::HostConfig& config);

}  // namespace pio::server
