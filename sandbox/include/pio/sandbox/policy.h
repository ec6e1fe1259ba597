#pragma once
// Policy: what one trust level grants a worker (namespaces, seccomp rules, filesystem paths,
// devices, network, cgroup limits, rlimits), parsed strictly from policies/<level>.json.
//
// The one thing a caller gets wrong: a Policy is data, nothing more. Nothing is enforced until
// a WorkerLauncher compiles it against the running kernel (see launcher.h); the paths in it may
// hold placeholders ($PLUGIN_DIR, $MODEL_DIRS, $SCRATCH, $WORKER) resolved per spawn.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"

namespace pio::sandbox {

enum class TrustLevel { kLow, kMedium, kHigh, kMaximum };
std::string_view trust_level_name(TrustLevel level);

// One namespace of the worker. kUser is special: the worker never keeps the host's identity
// (see docs/security-model.md, "Who the worker is").
enum class Namespace { kUser, kPid, kNet, kIpc, kMount, kUts };
std::string_view namespace_name(Namespace ns);

enum class SeccompAction { kAllow, kErrno, kKillProcess };

// One comparison on a syscall argument; all comparisons of a rule must hold (AND). Values are
// 64-bit; a rule that must hold whatever a plugin puts in the high bits is written as an
// allowlist (see policies/README.md).
struct ArgFilter {
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe, kMaskedEq };
  unsigned index = 0;  // 0..5
  Op op = Op::kEq;
  uint64_t value = 0;
  uint64_t mask = 0;  // kMaskedEq only
};

// Syscalls that get `action` when every arg filter holds. Several rules for one syscall are OR.
struct SeccompRule {
  std::vector<std::string> syscalls;
  SeccompAction action = SeccompAction::kAllow;
  int errno_value = 0;  // kErrno only
  std::vector<ArgFilter> args;
};

struct SeccompPolicy {
  bool enabled = false;
  SeccompAction default_action = SeccompAction::kErrno;
  int default_errno = 0;
  std::vector<SeccompRule> rules;
  // Syscalls the worker loses when it applies stage 2 (before any plugin code runs): they fail
  // with EPERM from then on. `socket` here stays allowed for AF_INET and AF_INET6 (only) when
  // the network is granted.
  std::vector<std::string> stage2_deny;
};

// Landlock path lists. A path may be a placeholder or an absolute path; an absolute path that
// does not exist on this machine is skipped (a library dir that one distribution lacks).
struct FilesystemPolicy {
  bool enabled = false;
  std::vector<std::string> read_only;
  std::vector<std::string> read_exec;
  std::vector<std::string> read_write;
};

struct DevicePolicy {
  // Glob patterns of device nodes the worker may open read-write (and ioctl): "/dev/nvidia*".
  std::vector<std::string> allow;
};

enum class NetworkPolicy { kNone, kOnRequest };

// cgroup limits. Unset = unlimited.
struct CgroupLimits {
  std::optional<uint64_t> memory_bytes;
  std::optional<uint64_t> pids_max;
  std::optional<uint32_t> cpu_percent;  // of one CPU; 200 = two CPUs
};

// Resource limits set with setrlimit (soft = hard). Unset = inherited from the host.
struct RlimitPolicy {
  std::optional<uint64_t> nofile;
  std::optional<uint64_t> fsize_bytes;
  std::optional<uint64_t> cpu_seconds;
  std::optional<uint64_t> core_bytes;
  std::optional<uint64_t> memlock_bytes;
  std::optional<uint64_t> stack_bytes;
  std::optional<uint64_t> as_bytes;
};

// What to do when the kernel lacks a mechanism the policy needs.
enum class MissingFeature { kFail, kDegrade };

struct Policy {
  TrustLevel trust_level = TrustLevel::kLow;
  MissingFeature on_missing_kernel_feature = MissingFeature::kFail;
  std::vector<Namespace> namespaces;
  SeccompPolicy seccomp;
  FilesystemPolicy filesystem;
  DevicePolicy devices;
  NetworkPolicy network = NetworkPolicy::kNone;
  CgroupLimits cgroup;
  RlimitPolicy rlimits;
  // Size of the private scratch tmpfs (needs the mount namespace); unset = plain directory.
  std::optional<uint64_t> scratch_bytes;

  bool has_namespace(Namespace ns) const;
};

// Reads the text of the policy named `name` (the file <name>.json beside the one that extends
// it): how parse_policy finds the base of `"extends": "<name>"`.
using PolicyBaseReader = std::function<Result<std::string>(std::string_view name)>;

// Parses a policy document. Unknown fields, unknown syscall names, unknown constants and values
// of the wrong type or range are refused with invalid_argument naming the field, e.g.
// `low.json: seccomp.rules[2].syscalls[1]: unknown syscall "opn"`. `source` names the document
// in messages.
//
// A document with `"extends": "<base>"` is composed: the base is read through `read_base`
// (parsed the same way, so it may extend another) and the document only adds grants to it
// (seccomp allow rules, paths, devices; raised limits; dropped namespaces; a mechanism switched
// off). What would take a grant away (a limit below the base's, a namespace the base lacks, a
// non-allow rule, network none over on_request) is refused, as are a missing base and a cycle.
Result<Policy> parse_policy(std::string_view json_text, std::string_view source,
                            const PolicyBaseReader& read_base = nullptr);

// Reads and parses one policy file; a base it extends is read from the same directory.
Result<Policy> load_policy_file(const std::filesystem::path& path);

// Reads policies/<level>.json from `policy_dir`.
Result<Policy> load_policy(const std::filesystem::path& policy_dir, TrustLevel level);

}  // namespace pio::sandbox
