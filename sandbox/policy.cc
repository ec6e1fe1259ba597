// Strict policy parser: every field is known, typed and range-checked, and every error names the
// field it is about, so an operator can fix a policy file from the message alone.

#include "pio/sandbox/policy.h"

#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "fmt/format.h"

namespace pio::sandbox {
namespace {

using nlohmann::json;

struct NamedValue {
  std::string_view name;
  uint64_t value;
};

// Symbolic constants a policy may use as argument values (combined with '|').
constexpr NamedValue kConstants[] = {
    {"AF_UNIX", AF_UNIX},
    {"AF_INET", AF_INET},
    {"AF_INET6", AF_INET6},
    {"AF_NETLINK", AF_NETLINK},
    {"AF_PACKET", AF_PACKET},
    {"CLONE_NEWNS", CLONE_NEWNS},
    {"CLONE_NEWCGROUP", CLONE_NEWCGROUP},
    {"CLONE_NEWUTS", CLONE_NEWUTS},
    {"CLONE_NEWIPC", CLONE_NEWIPC},
    {"CLONE_NEWUSER", CLONE_NEWUSER},
    {"CLONE_NEWPID", CLONE_NEWPID},
    {"CLONE_NEWNET", CLONE_NEWNET},
    {"CLONE_NEWTIME", 0x00000080},
    {"PROT_READ", PROT_READ},
    {"PROT_WRITE", PROT_WRITE},
    {"PROT_EXEC", PROT_EXEC},
    {"MAP_SHARED", MAP_SHARED},
    {"MAP_PRIVATE", MAP_PRIVATE},
    {"MAP_SHARED_VALIDATE", MAP_SHARED_VALIDATE},
    {"MAP_ANONYMOUS", MAP_ANONYMOUS},
    {"FIONREAD", FIONREAD},
    {"FIONBIO", FIONBIO},
    {"FIOCLEX", FIOCLEX},
    {"FIONCLEX", FIONCLEX},
    {"FIOASYNC", FIOASYNC},
    {"TCGETS", TCGETS},
    {"TIOCGWINSZ", TIOCGWINSZ},
    {"TIOCSTI", TIOCSTI},
    {"PR_SET_NAME", PR_SET_NAME},
    {"PR_GET_NAME", PR_GET_NAME},
    {"PR_GET_DUMPABLE", PR_GET_DUMPABLE},
    {"PR_SET_PDEATHSIG", PR_SET_PDEATHSIG},
    {"PR_GET_PDEATHSIG", PR_GET_PDEATHSIG},
    {"PR_SET_NO_NEW_PRIVS", PR_SET_NO_NEW_PRIVS},
    {"PR_GET_NO_NEW_PRIVS", PR_GET_NO_NEW_PRIVS},
    {"PR_GET_SECCOMP", PR_GET_SECCOMP},
    {"PR_CAPBSET_READ", PR_CAPBSET_READ},
    {"PR_SET_VMA", 0x53564d41},
    {"PR_GET_TIMERSLACK", PR_GET_TIMERSLACK},
    {"SECCOMP_SET_MODE_FILTER", SECCOMP_SET_MODE_FILTER},
    {"SECCOMP_GET_ACTION_AVAIL", SECCOMP_GET_ACTION_AVAIL},
};

constexpr NamedValue kErrnos[] = {
    {"EPERM", EPERM},   {"EACCES", EACCES}, {"ENOSYS", ENOSYS},
    {"EINVAL", EINVAL}, {"ENOTTY", ENOTTY}, {"EAFNOSUPPORT", EAFNOSUPPORT},
};

constexpr std::string_view kPlaceholders[] = {"$PLUGIN_DIR", "$MODEL_DIRS", "$SCRATCH", "$WORKER"};

class Parser {
 public:
  explicit Parser(std::string_view source) : source_(source) {}

  Status error(std::string_view field, std::string_view what) const {
    return invalid_argument_error(fmt::format("{}: {}: {}", source_, field, what));
  }

  // Refuses fields of `obj` not in `known`.
  Status only_fields(const json& obj, std::string_view field,
                     std::initializer_list<std::string_view> known) const {
    if (!obj.is_object()) return error(field, "must be an object");
    for (const auto& [key, value] : obj.items()) {
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        return error(field.empty() ? key : fmt::format("{}.{}", field, key), "unknown field");
      }
    }
    return ok_status();
  }

  Result<bool> boolean(const json& v, std::string_view field) const {
    if (!v.is_boolean()) return error(field, "must be true or false");
    return v.get<bool>();
  }

  Result<std::string> string(const json& v, std::string_view field) const {
    if (!v.is_string()) return error(field, "must be a string");
    return v.get<std::string>();
  }

  // A non-negative integer, or null (= unset).
  Result<std::optional<uint64_t>> optional_count(const json& v, std::string_view field,
                                                 uint64_t max) const {
    if (v.is_null()) return std::optional<uint64_t>();
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
      return error(field, "must be a non-negative integer or null");
    }
    uint64_t n = v.get<uint64_t>();
    if (n > max) return error(field, fmt::format("{} is larger than {}", n, max));
    return std::optional<uint64_t>(n);
  }

  Result<std::vector<std::string>> string_list(const json& v, std::string_view field) const {
    if (!v.is_array()) return error(field, "must be an array of strings");
    std::vector<std::string> out;
    for (size_t i = 0; i < v.size(); ++i) {
      PIO_ASSIGN_OR_RETURN(auto s, string(v[i], fmt::format("{}[{}]", field, i)));
      out.push_back(std::move(s));
    }
    return out;
  }

  // An integer, or a string of constant names and numbers joined with '|'.
  Result<uint64_t> constant(const json& v, std::string_view field) const {
    if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
      return v.get<uint64_t>();
    }
    if (!v.is_string()) return error(field, "must be a non-negative integer or a constant name");
    uint64_t out = 0;
    std::stringstream parts(v.get<std::string>());
    std::string part;
    while (std::getline(parts, part, '|')) {
      part.erase(0, part.find_first_not_of(' '));
      part.erase(part.find_last_not_of(' ') + 1);
      auto it = std::find_if(std::begin(kConstants), std::end(kConstants),
                             [&](const NamedValue& c) { return c.name == part; });
      if (it != std::end(kConstants)) {
        out |= it->value;
        continue;
      }
      try {
        size_t used = 0;
        uint64_t n = std::stoull(part, &used, 0);
        if (used != part.size()) throw std::invalid_argument(part);
        out |= n;
      } catch (const std::exception&) {
        return error(field, fmt::format("unknown constant \"{}\"", part));
      }
    }
    return out;
  }

  Result<int> errno_name(const json& v, std::string_view field) const {
    PIO_ASSIGN_OR_RETURN(std::string name, string(v, field));
    for (const auto& e : kErrnos) {
      if (e.name == name) return static_cast<int>(e.value);
    }
    return error(field, fmt::format("unknown errno \"{}\"", name));
  }

  Result<SeccompAction> action(const json& v, std::string_view field) const {
    PIO_ASSIGN_OR_RETURN(std::string name, string(v, field));
    if (name == "allow") return SeccompAction::kAllow;
    if (name == "errno") return SeccompAction::kErrno;
    if (name == "kill_process") return SeccompAction::kKillProcess;
    return error(field, fmt::format("\"{}\" is not one of allow, errno, kill_process", name));
  }

  Status syscall_name(const std::string& name, std::string_view field) const {
    if (seccomp_syscall_resolve_name(name.c_str()) == __NR_SCMP_ERROR) {
      return error(field, fmt::format("unknown syscall \"{}\"", name));
    }
    return ok_status();
  }

  Status path(const std::string& p, std::string_view field) const {
    if (p.empty()) return error(field, "empty path");
    if (p[0] == '$') {
      if (std::find(std::begin(kPlaceholders), std::end(kPlaceholders), p) ==
          std::end(kPlaceholders)) {
        return error(field, fmt::format("unknown placeholder \"{}\"", p));
      }
      return ok_status();
    }
    if (p[0] != '/') return error(field, fmt::format("\"{}\" is not an absolute path", p));
    if (p.find("/../") != std::string::npos || p.ends_with("/..")) {
      return error(field, fmt::format("\"{}\" contains ..", p));
    }
    return ok_status();
  }

  Result<ArgFilter> arg_filter(const json& v, std::string_view field) const {
    PIO_RETURN_IF_ERROR(only_fields(v, field, {"index", "op", "value", "mask"}));
    ArgFilter f;
    if (!v.contains("index")) return error(field, "missing field index");
    PIO_ASSIGN_OR_RETURN(auto index, optional_count(v["index"], fmt::format("{}.index", field), 5));
    if (!index) return error(fmt::format("{}.index", field), "must be 0..5");
    f.index = static_cast<unsigned>(*index);
    if (!v.contains("op")) return error(field, "missing field op");
    PIO_ASSIGN_OR_RETURN(std::string op, string(v["op"], fmt::format("{}.op", field)));
    static constexpr std::pair<std::string_view, ArgFilter::Op> kOps[] = {
        {"eq", ArgFilter::Op::kEq},
        {"ne", ArgFilter::Op::kNe},
        {"lt", ArgFilter::Op::kLt},
        {"le", ArgFilter::Op::kLe},
        {"gt", ArgFilter::Op::kGt},
        {"ge", ArgFilter::Op::kGe},
        {"masked_eq", ArgFilter::Op::kMaskedEq}};
    auto it = std::find_if(std::begin(kOps), std::end(kOps),
                           [&](const auto& o) { return o.first == op; });
    if (it == std::end(kOps)) {
      return error(fmt::format("{}.op", field),
                   fmt::format("\"{}\" is not one of eq, ne, lt, le, gt, ge, masked_eq", op));
    }
    f.op = it->second;
    if (!v.contains("value")) return error(field, "missing field value");
    PIO_ASSIGN_OR_RETURN(f.value, constant(v["value"], fmt::format("{}.value", field)));
    if (f.op == ArgFilter::Op::kMaskedEq) {
      if (!v.contains("mask")) return error(field, "masked_eq needs field mask");
      PIO_ASSIGN_OR_RETURN(f.mask, constant(v["mask"], fmt::format("{}.mask", field)));
    } else if (v.contains("mask")) {
      return error(fmt::format("{}.mask", field), "only masked_eq takes a mask");
    }
    return f;
  }

  Result<SeccompRule> rule(const json& v, std::string_view field) const {
    PIO_RETURN_IF_ERROR(only_fields(v, field, {"syscalls", "action", "errno", "args", "why"}));
    SeccompRule r;
    if (!v.contains("syscalls")) return error(field, "missing field syscalls");
    std::string f_sys = fmt::format("{}.syscalls", field);
    PIO_ASSIGN_OR_RETURN(r.syscalls, string_list(v["syscalls"], f_sys));
    if (r.syscalls.empty()) return error(f_sys, "must not be empty");
    for (size_t i = 0; i < r.syscalls.size(); ++i) {
      PIO_RETURN_IF_ERROR(syscall_name(r.syscalls[i], fmt::format("{}[{}]", f_sys, i)));
    }
    if (!v.contains("action")) return error(field, "missing field action");
    PIO_ASSIGN_OR_RETURN(r.action, action(v["action"], fmt::format("{}.action", field)));
    if (r.action == SeccompAction::kErrno) {
      if (!v.contains("errno")) return error(field, "action errno needs field errno");
      PIO_ASSIGN_OR_RETURN(r.errno_value, errno_name(v["errno"], fmt::format("{}.errno", field)));
    } else if (v.contains("errno")) {
      return error(fmt::format("{}.errno", field), "only action errno takes an errno");
    }
    if (v.contains("why"))
      PIO_RETURN_IF_ERROR(string(v["why"], fmt::format("{}.why", field)).status());
    if (v.contains("args")) {
      std::string f_args = fmt::format("{}.args", field);
      if (!v["args"].is_array()) return error(f_args, "must be an array");
      std::set<unsigned> seen;
      for (size_t i = 0; i < v["args"].size(); ++i) {
        std::string f_arg = fmt::format("{}[{}]", f_args, i);
        PIO_ASSIGN_OR_RETURN(ArgFilter a, arg_filter(v["args"][i], f_arg));
        if (!seen.insert(a.index).second) {
          return error(f_arg, "a rule may compare each argument once; write a second rule");
        }
        r.args.push_back(a);
      }
    }
    return r;
  }

  Result<SeccompPolicy> seccomp(const json& v) const {
    PIO_RETURN_IF_ERROR(only_fields(
        v, "seccomp", {"enabled", "default_action", "default_errno", "rules", "stage2_deny"}));
    SeccompPolicy s;
    if (!v.contains("enabled")) return error("seccomp", "missing field enabled");
    PIO_ASSIGN_OR_RETURN(s.enabled, boolean(v["enabled"], "seccomp.enabled"));
    if (!s.enabled) {
      for (const auto& [key, value] : v.items()) {
        if (key != "enabled") return error(fmt::format("seccomp.{}", key), "seccomp is disabled");
      }
      return s;
    }
    if (!v.contains("default_action")) return error("seccomp", "missing field default_action");
    PIO_ASSIGN_OR_RETURN(s.default_action, action(v["default_action"], "seccomp.default_action"));
    if (s.default_action == SeccompAction::kAllow) {
      return error("seccomp.default_action", "allow would make the filter a denylist");
    }
    if (s.default_action == SeccompAction::kErrno) {
      if (!v.contains("default_errno")) return error("seccomp", "missing field default_errno");
      PIO_ASSIGN_OR_RETURN(s.default_errno,
                           errno_name(v["default_errno"], "seccomp.default_errno"));
    } else if (v.contains("default_errno")) {
      return error("seccomp.default_errno", "only default_action errno takes an errno");
    }
    if (!v.contains("rules") || !v["rules"].is_array()) {
      return error("seccomp.rules", "must be an array");
    }
    for (size_t i = 0; i < v["rules"].size(); ++i) {
      PIO_ASSIGN_OR_RETURN(SeccompRule r, rule(v["rules"][i], fmt::format("seccomp.rules[{}]", i)));
      s.rules.push_back(std::move(r));
    }
    if (v.contains("stage2_deny")) {
      PIO_ASSIGN_OR_RETURN(s.stage2_deny, string_list(v["stage2_deny"], "seccomp.stage2_deny"));
      for (size_t i = 0; i < s.stage2_deny.size(); ++i) {
        PIO_RETURN_IF_ERROR(
            syscall_name(s.stage2_deny[i], fmt::format("seccomp.stage2_deny[{}]", i)));
      }
    }
    return s;
  }

  Result<FilesystemPolicy> filesystem(const json& v) const {
    PIO_RETURN_IF_ERROR(
        only_fields(v, "filesystem", {"enabled", "read_only", "read_exec", "read_write"}));
    FilesystemPolicy f;
    if (!v.contains("enabled")) return error("filesystem", "missing field enabled");
    PIO_ASSIGN_OR_RETURN(f.enabled, boolean(v["enabled"], "filesystem.enabled"));
    struct List {
      const char* name;
      std::vector<std::string>* out;
    };
    for (List l : {List{"read_only", &f.read_only}, List{"read_exec", &f.read_exec},
                   List{"read_write", &f.read_write}}) {
      if (!v.contains(l.name)) continue;
      std::string field = fmt::format("filesystem.{}", l.name);
      PIO_ASSIGN_OR_RETURN(*l.out, string_list(v[l.name], field));
      for (size_t i = 0; i < l.out->size(); ++i) {
        PIO_RETURN_IF_ERROR(path((*l.out)[i], fmt::format("{}[{}]", field, i)));
      }
    }
    return f;
  }

  Result<TrustLevel> trust_level(const json& v) const {
    PIO_ASSIGN_OR_RETURN(std::string level, string(v, "trust_level"));
    for (TrustLevel t :
         {TrustLevel::kLow, TrustLevel::kMedium, TrustLevel::kHigh, TrustLevel::kMaximum}) {
      if (level == trust_level_name(t)) return t;
    }
    return error("trust_level",
                 fmt::format("\"{}\" is not one of low, medium, high, maximum", level));
  }

  Result<std::vector<Namespace>> namespaces(const json& v) const {
    PIO_ASSIGN_OR_RETURN(auto names, string_list(v, "namespaces"));
    std::vector<Namespace> out;
    for (size_t i = 0; i < names.size(); ++i) {
      static constexpr std::pair<std::string_view, Namespace> kNs[] = {
          {"user", Namespace::kUser}, {"pid", Namespace::kPid},     {"net", Namespace::kNet},
          {"ipc", Namespace::kIpc},   {"mount", Namespace::kMount}, {"uts", Namespace::kUts}};
      auto it = std::find_if(std::begin(kNs), std::end(kNs),
                             [&](const auto& n) { return n.first == names[i]; });
      std::string field = fmt::format("namespaces[{}]", i);
      if (it == std::end(kNs)) {
        return error(field,
                     fmt::format("\"{}\" is not one of user, pid, net, ipc, mount, uts", names[i]));
      }
      if (std::find(out.begin(), out.end(), it->second) != out.end()) {
        return error(field, "listed twice");
      }
      out.push_back(it->second);
    }
    return out;
  }

  // Appends the paths of `v[name]` to `out`; over a base, a path the base already lists is
  // refused (a level says what it adds, it does not repeat its base).
  Status add_paths(const json& v, const char* section, const char* name,
                   std::vector<std::string>* out, bool over_base) const {
    if (!v.contains(name)) return ok_status();
    std::string field = fmt::format("{}.{}", section, name);
    PIO_ASSIGN_OR_RETURN(auto paths, string_list(v[name], field));
    for (size_t i = 0; i < paths.size(); ++i) {
      std::string f = fmt::format("{}[{}]", field, i);
      PIO_RETURN_IF_ERROR(path(paths[i], f));
      if (std::string_view(section) == "devices" && !paths[i].starts_with("/dev/")) {
        return error(f, "must be under /dev/");
      }
      if (over_base && std::find(out->begin(), out->end(), paths[i]) != out->end()) {
        return error(f, fmt::format("\"{}\" is granted by the base already", paths[i]));
      }
      out->push_back(std::move(paths[i]));
    }
    return ok_status();
  }

  // A level over a base may switch a mechanism off ("enabled": false) or add to it, never
  // switch it on: that would take away what the base grants.
  Result<bool> switched_off(const json& v, std::string_view section, bool base_enabled) const {
    if (!v.contains("enabled")) {
      if (!base_enabled)
        return error(section, "the base has it disabled; there is nothing to add to");
      return false;
    }
    PIO_ASSIGN_OR_RETURN(bool enabled, boolean(v["enabled"], fmt::format("{}.enabled", section)));
    if (enabled) {
      return error(fmt::format("{}.enabled", section),
                   "over a base only false is allowed (a level may not add restrictions)");
    }
    for (const auto& [key, value] : v.items()) {
      if (key != "enabled") return error(fmt::format("{}.{}", section, key), "disabled here");
    }
    return true;
  }

  Status seccomp_over_base(const json& v, SeccompPolicy* s) const {
    PIO_RETURN_IF_ERROR(only_fields(v, "seccomp", {"enabled", "rules"}));
    PIO_ASSIGN_OR_RETURN(bool off, switched_off(v, "seccomp", s->enabled));
    if (off) {
      *s = SeccompPolicy{};
      return ok_status();
    }
    if (!v.contains("rules") || !v["rules"].is_array()) {
      return error("seccomp.rules", "must be an array");
    }
    for (size_t i = 0; i < v["rules"].size(); ++i) {
      std::string field = fmt::format("seccomp.rules[{}]", i);
      PIO_ASSIGN_OR_RETURN(SeccompRule r, rule(v["rules"][i], field));
      if (r.action != SeccompAction::kAllow) {
        return error(fmt::format("{}.action", field),
                     "a level over a base only adds grants: its rules must allow");
      }
      s->rules.push_back(std::move(r));
    }
    return ok_status();
  }

  Status filesystem_over_base(const json& v, FilesystemPolicy* f) const {
    PIO_RETURN_IF_ERROR(
        only_fields(v, "filesystem", {"enabled", "read_only", "read_exec", "read_write"}));
    PIO_ASSIGN_OR_RETURN(bool off, switched_off(v, "filesystem", f->enabled));
    if (off) {
      *f = FilesystemPolicy{};
      return ok_status();
    }
    PIO_RETURN_IF_ERROR(add_paths(v, "filesystem", "read_only", &f->read_only, true));
    PIO_RETURN_IF_ERROR(add_paths(v, "filesystem", "read_exec", &f->read_exec, true));
    return add_paths(v, "filesystem", "read_write", &f->read_write, true);
  }

  // Sets the figures `v` names; over a base, none may be below the base's (unset = unlimited).
  struct Figure {
    const char* name;
    std::optional<uint64_t>* out;
    uint64_t max;
    uint64_t min;
    const char* min_reason;
  };
  Status figures(const json& v, std::string_view section, std::initializer_list<Figure> list,
                 bool over_base) const {
    for (const Figure& f : list) {
      if (!v.contains(f.name)) continue;
      std::string field =
          section.empty() ? std::string(f.name) : fmt::format("{}.{}", section, f.name);
      PIO_ASSIGN_OR_RETURN(auto value, optional_count(v[f.name], field, f.max));
      if (value && *value < f.min) return error(field, f.min_reason);
      if (over_base && value && (!*f.out || *value < **f.out)) {
        return error(field, fmt::format("{} is below the base's {} (a level may not take away "
                                        "what its base grants)",
                                        *value, *f.out ? std::to_string(**f.out) : "unlimited"));
      }
      *f.out = value;
    }
    return ok_status();
  }

  // A whole policy document, or (base set) one that extends `base`: it names what it adds and
  // the figures it raises; the result is the base with those grants added.
  Result<Policy> policy(const json& doc, const Policy* base) const {
    const bool over = base != nullptr;
    PIO_RETURN_IF_ERROR(
        only_fields(doc, "",
                    {"schema_version", "extends", "trust_level", "description",
                     "on_missing_kernel_feature", "namespaces", "seccomp", "filesystem", "devices",
                     "network", "cgroup", "rlimits", "scratch_bytes"}));
    if (!over && doc.contains("extends")) return error("extends", "needs a base");
    std::initializer_list<const char*> required = {
        "schema_version", "trust_level", "on_missing_kernel_feature",
        "namespaces",     "seccomp",     "filesystem",
        "devices",        "network",     "cgroup",
        "rlimits"};
    for (const char* field : required) {
      bool needed = !over || std::string_view(field) == "schema_version" ||
                    std::string_view(field) == "trust_level";
      if (needed && !doc.contains(field)) return error(field, "missing field");
    }
    if (!doc["schema_version"].is_number_integer() || doc["schema_version"].get<int64_t>() != 1) {
      return error("schema_version", "must be 1");
    }
    if (doc.contains("description")) {
      PIO_RETURN_IF_ERROR(string(doc["description"], "description").status());
    }
    Policy p = over ? *base : Policy{};
    PIO_ASSIGN_OR_RETURN(p.trust_level, trust_level(doc["trust_level"]));
    if (over && p.trust_level <= base->trust_level) {
      return error("trust_level", fmt::format("must be above its base's ({})",
                                              trust_level_name(base->trust_level)));
    }
    if (doc.contains("on_missing_kernel_feature")) {
      PIO_ASSIGN_OR_RETURN(std::string missing,
                           string(doc["on_missing_kernel_feature"], "on_missing_kernel_feature"));
      if (missing == "fail") {
        p.on_missing_kernel_feature = MissingFeature::kFail;
      } else if (missing == "degrade") {
        p.on_missing_kernel_feature = MissingFeature::kDegrade;
      } else {
        return error("on_missing_kernel_feature",
                     fmt::format("\"{}\" is not one of fail, degrade", missing));
      }
    }

    if (doc.contains("namespaces")) {
      PIO_ASSIGN_OR_RETURN(auto list, namespaces(doc["namespaces"]));
      for (size_t i = 0; over && i < list.size(); ++i) {
        if (!base->has_namespace(list[i])) {
          return error(fmt::format("namespaces[{}]", i),
                       fmt::format("\"{}\" is not one of the base's: a level may drop isolation "
                                   "of its base, never add it",
                                   namespace_name(list[i])));
        }
      }
      p.namespaces = std::move(list);
    }

    if (!over) {
      PIO_ASSIGN_OR_RETURN(p.seccomp, seccomp(doc["seccomp"]));
      PIO_ASSIGN_OR_RETURN(p.filesystem, filesystem(doc["filesystem"]));
    } else {
      if (doc.contains("seccomp"))
        PIO_RETURN_IF_ERROR(seccomp_over_base(doc["seccomp"], &p.seccomp));
      if (doc.contains("filesystem")) {
        PIO_RETURN_IF_ERROR(filesystem_over_base(doc["filesystem"], &p.filesystem));
      }
    }

    if (doc.contains("devices")) {
      PIO_RETURN_IF_ERROR(only_fields(doc["devices"], "devices", {"allow"}));
      if (over && !p.filesystem.enabled) {
        return error("devices", "Landlock is disabled: every device node is open already");
      }
      PIO_RETURN_IF_ERROR(add_paths(doc["devices"], "devices", "allow", &p.devices.allow, over));
    }
    // Device nodes are enforced by Landlock; without it, there is no list to keep.
    if (!p.filesystem.enabled && over) p.devices.allow.clear();

    if (doc.contains("network")) {
      PIO_ASSIGN_OR_RETURN(std::string net, string(doc["network"], "network"));
      NetworkPolicy n;
      if (net == "none") {
        n = NetworkPolicy::kNone;
      } else if (net == "on_request") {
        n = NetworkPolicy::kOnRequest;
      } else {
        return error("network", fmt::format("\"{}\" is not one of none, on_request", net));
      }
      if (over && n == NetworkPolicy::kNone && base->network == NetworkPolicy::kOnRequest) {
        return error("network", "the base grants on_request; a level may not take it away");
      }
      p.network = n;
    }
    if (p.network == NetworkPolicy::kNone && !p.has_namespace(Namespace::kNet) &&
        !p.seccomp.enabled) {
      return error("network", "none needs the net namespace or seccomp to enforce it");
    }

    constexpr uint64_t kMax = uint64_t{1} << 62;
    if (doc.contains("cgroup")) {
      const json& cg = doc["cgroup"];
      PIO_RETURN_IF_ERROR(only_fields(cg, "cgroup", {"memory_bytes", "pids_max", "cpu_percent"}));
      std::optional<uint64_t> cpu = p.cgroup.cpu_percent;
      PIO_RETURN_IF_ERROR(
          figures(cg, "cgroup",
                  {{"memory_bytes", &p.cgroup.memory_bytes, kMax, uint64_t{4} << 20,
                    "must be at least 4 MiB"},
                   {"pids_max", &p.cgroup.pids_max, 1u << 22, 1, "must be at least 1"},
                   {"cpu_percent", &cpu, 25600, 1, "must be at least 1"}},
                  over));
      p.cgroup.cpu_percent =
          cpu ? std::optional<uint32_t>(static_cast<uint32_t>(*cpu)) : std::nullopt;
    }
    if (doc.contains("rlimits")) {
      const json& rl = doc["rlimits"];
      PIO_RETURN_IF_ERROR(only_fields(rl, "rlimits",
                                      {"nofile", "fsize_bytes", "cpu_seconds", "core_bytes",
                                       "memlock_bytes", "stack_bytes", "as_bytes"}));
      RlimitPolicy& r = p.rlimits;
      PIO_RETURN_IF_ERROR(figures(
          rl, "rlimits",
          {{"nofile", &r.nofile, kMax, 16, "must be at least 16 (the worker needs its own fds)"},
           {"fsize_bytes", &r.fsize_bytes, kMax, 0, ""},
           {"cpu_seconds", &r.cpu_seconds, kMax, 0, ""},
           {"core_bytes", &r.core_bytes, kMax, 0, ""},
           {"memlock_bytes", &r.memlock_bytes, kMax, 0, ""},
           {"stack_bytes", &r.stack_bytes, kMax, 0, ""},
           {"as_bytes", &r.as_bytes, kMax, 0, ""}},
          over));
    }
    if (doc.contains("scratch_bytes")) {
      PIO_RETURN_IF_ERROR(
          figures(doc, "", {{"scratch_bytes", &p.scratch_bytes, kMax, 0, ""}}, over));
    }
    if (p.scratch_bytes && !p.has_namespace(Namespace::kMount)) {
      return error("scratch_bytes", "needs the mount namespace (a private tmpfs)");
    }
    return p;
  }

 private:
  std::string source_;
};

}  // namespace

std::string_view trust_level_name(TrustLevel level) {
  switch (level) {
    case TrustLevel::kLow:
      return "low";
    case TrustLevel::kMedium:
      return "medium";
    case TrustLevel::kHigh:
      return "high";
    case TrustLevel::kMaximum:
      return "maximum";
  }
  return "?";
}

std::string_view namespace_name(Namespace ns) {
  switch (ns) {
    case Namespace::kUser:
      return "user";
    case Namespace::kPid:
      return "pid";
    case Namespace::kNet:
      return "net";
    case Namespace::kIpc:
      return "ipc";
    case Namespace::kMount:
      return "mount";
    case Namespace::kUts:
      return "uts";
  }
  return "?";
}

bool Policy::has_namespace(Namespace ns) const {
  return std::find(namespaces.begin(), namespaces.end(), ns) != namespaces.end();
}

namespace {

// Parses `json_text` and, through `read_base`, every policy it extends. `chain` holds the names
// on the way here, to refuse a cycle.
Result<Policy> parse_chain(std::string_view json_text, std::string_view source,
                           const PolicyBaseReader& read_base, std::vector<std::string>& chain) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {
    // Not only parse_error: a number too large for a double is out_of_range (406).
    return invalid_argument_error(fmt::format("{}: not valid JSON: {}", source, e.what()));
  }
  Parser parser(source);
  if (!doc.is_object() || !doc.contains("extends")) return parser.policy(doc, nullptr);
  PIO_ASSIGN_OR_RETURN(std::string name, parser.string(doc["extends"], "extends"));
  if (name.empty() ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos) {
    return parser.error("extends",
                        fmt::format("\"{}\" is not a policy name (a-z, 0-9, _, -)", name));
  }
  if (!read_base) {
    return parser.error("extends", "a policy that extends another is read from its directory");
  }
  if (std::find(chain.begin(), chain.end(), name) != chain.end()) {
    std::string cycle;
    for (const std::string& n : chain) cycle += n + " -> ";
    return parser.error("extends", fmt::format("a cycle: {}{}", cycle, name));
  }
  auto text = read_base(name);
  if (!text.ok()) {
    return parser.error("extends", fmt::format("base \"{}\": {}", name, text.status().message()));
  }
  chain.push_back(name);
  auto base = parse_chain(*text, fmt::format("{}.json", name), read_base, chain);
  chain.pop_back();
  if (!base.ok()) return base.status();
  return parser.policy(doc, &*base);
}

Result<std::string> read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return errno_status(fmt::format("policy file {}", path.string()), errno);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

Result<Policy> parse_policy(std::string_view json_text, std::string_view source,
                            const PolicyBaseReader& read_base) {
  std::string name(source);
  if (name.ends_with(".json")) name.resize(name.size() - 5);
  std::vector<std::string> chain = {name};
  return parse_chain(json_text, source, read_base, chain);
}

Result<Policy> load_policy_file(const std::filesystem::path& path) {
  PIO_ASSIGN_OR_RETURN(std::string text, read_text(path));
  std::filesystem::path dir = path.parent_path();
  PolicyBaseReader read_base = [dir](std::string_view name) {
    return read_text(dir / fmt::format("{}.json", name));
  };
  return parse_policy(text, path.filename().string(), read_base);
}

Result<Policy> load_policy(const std::filesystem::path& policy_dir, TrustLevel level) {
  return load_policy_file(policy_dir / fmt::format("{}.json", trust_level_name(level)));
}

}  // namespace pio::sandbox
