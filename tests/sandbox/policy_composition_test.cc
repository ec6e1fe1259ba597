// Trust levels are composed, not copied: each shipped level extends the one below and only adds
// grants, so what low permits medium permits, and so on up to maximum. The subset relation is
// computed from what the launcher enforces: every syscall number and the argument values the
// rules compare, run through the compiled BPF of both seccomp stages; every path, device,
// namespace, limit and the network.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "fmt/format.h"
#include "internal/seccomp_program.h"
#include "pio/ipc/check.h"
#include "pio/sandbox/policy.h"
#include "seccomp_evaluator.h"

namespace pio::sandbox::testing {
namespace {

constexpr TrustLevel kLevels[] = {TrustLevel::kLow, TrustLevel::kMedium, TrustLevel::kHigh,
                                  TrustLevel::kMaximum};

// One level as a worker meets it: the policy, and its filters with or without the network.
struct Enforced {
  std::string name;
  Policy policy;
  bool network = false;  // the spawn was granted the network (policy on_request, manifest asks)
  BpfProgram stage1, stage2;

  bool allows_call(const SyscallCall& call) const {
    if (!policy.seccomp.enabled) return true;
    return allows(verdict_of({&stage1.code, &stage2.code}, call));
  }
};

Enforced enforced(TrustLevel level, bool network) {
  Enforced e;
  auto p = load_policy(PIO_POLICY_DIR, level);
  PIO_CHECK(p.ok());
  e.policy = *p;
  e.network = network && p->network == NetworkPolicy::kOnRequest;
  e.name = fmt::format("{}{}", trust_level_name(level), e.network ? " (network granted)" : "");
  if (p->seccomp.enabled) {
    auto s1 = compile_stage1(p->seccomp);
    auto s2 = compile_stage2(p->seccomp, e.network);
    PIO_CHECK(s1.ok() && s2.ok());
    e.stage1 = *s1;
    e.stage2 = *s2;
  }
  return e;
}

// low ⊆ medium ⊆ high ⊆ high with the network ⊆ maximum.
std::vector<Enforced> chain() {
  return {enforced(TrustLevel::kLow, true), enforced(TrustLevel::kMedium, true),
          enforced(TrustLevel::kHigh, false), enforced(TrustLevel::kHigh, true),
          enforced(TrustLevel::kMaximum, true)};
}

// The argument values worth trying per syscall and argument index: every value and mask a rule
// of any level compares, its neighbours, each of its mask bits flipped, bits above 32 set.
std::map<int, std::map<unsigned, std::set<uint64_t>>> argument_candidates() {
  std::map<int, std::map<unsigned, std::set<uint64_t>>> out;
  for (TrustLevel level : kLevels) {
    auto p = load_policy(PIO_POLICY_DIR, level);
    PIO_CHECK(p.ok());
    for (const SeccompRule& rule : p->seccomp.rules) {
      for (const std::string& name : rule.syscalls) {
        int nr = seccomp_syscall_resolve_name(name.c_str());
        for (const ArgFilter& a : rule.args) {
          std::set<uint64_t>& values = out[nr][a.index];
          for (uint64_t v : {a.value, a.value - 1, a.value + 1, a.value | (uint64_t{1} << 32),
                             uint64_t{0}, ~uint64_t{0}}) {
            values.insert(v);
          }
          if (a.op == ArgFilter::Op::kMaskedEq) {
            values.insert(a.value | ~a.mask);
            values.insert((a.value | ~a.mask) & 0xffffffffu);
            for (unsigned bit = 0; bit < 64; ++bit) {
              if (a.mask & (uint64_t{1} << bit)) values.insert(a.value ^ (uint64_t{1} << bit));
            }
          }
        }
      }
    }
  }
  // Stage 2 compares socket's domain when the network is granted.
  for (uint64_t domain = 0; domain <= 16; ++domain) {
    out[SCMP_SYS(socket)][0].insert(domain);
    out[SCMP_SYS(socket)][0].insert(domain | (uint64_t{1} << 32));
  }
  return out;
}

// Every call of the candidate space for syscall `nr`: the cross product of its argument values.
std::vector<SyscallCall> calls_of(int nr, const std::map<unsigned, std::set<uint64_t>>& args) {
  std::vector<SyscallCall> out = {SyscallCall{nr, {}}};
  for (const auto& [index, values] : args) {
    std::vector<SyscallCall> next;
    for (const SyscallCall& c : out) {
      for (uint64_t v : values) {
        SyscallCall d = c;
        d.args[index] = v;
        next.push_back(d);
      }
    }
    out = std::move(next);
  }
  return out;
}

std::string describe(const SyscallCall& c) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, c.nr);
  std::string out = name != nullptr ? name : std::to_string(c.nr);
  free(name);
  out += fmt::format("({:#x}, {:#x}, {:#x}, {:#x})", c.args[0], c.args[1], c.args[2], c.args[3]);
  return out;
}

TEST(PolicyComposition, EverySyscallALevelAllowsEveryHigherLevelAllows) {
  std::vector<Enforced> levels = chain();
  auto candidates = argument_candidates();
  size_t calls = 0;
  for (int nr = 0; nr < 512; ++nr) {
    auto it = candidates.find(nr);
    for (const SyscallCall& call :
         calls_of(nr, it == candidates.end() ? decltype(it->second){} : it->second)) {
      ++calls;
      for (size_t i = 0; i + 1 < levels.size(); ++i) {
        if (levels[i].allows_call(call) && !levels[i + 1].allows_call(call)) {
          ADD_FAILURE() << levels[i].name << " allows " << describe(call) << " but "
                        << levels[i + 1].name << " does not";
        }
      }
    }
  }
  // The space covers the argument-filtered rules (mmap's protections and flags, the ioctl
  // requests, prctl options, clone flags, socket domains), not only the syscall numbers.
  EXPECT_GT(calls, 512u + 250u);
}

bool at_least(const std::optional<uint64_t>& higher, const std::optional<uint64_t>& lower) {
  return !higher || (lower && *higher >= *lower);
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

TEST(PolicyComposition, EveryPathDeviceNamespaceLimitAndTheNetworkOfALevelIsKeptAbove) {
  std::vector<Enforced> levels = chain();
  for (size_t i = 0; i + 1 < levels.size(); ++i) {
    const Policy& lo = levels[i].policy;
    const Policy& hi = levels[i + 1].policy;
    SCOPED_TRACE(levels[i].name + " -> " + levels[i + 1].name);
    for (Namespace ns : hi.namespaces) {
      EXPECT_TRUE(lo.has_namespace(ns)) << "adds namespace " << namespace_name(ns);
    }
    if (hi.filesystem.enabled) {
      ASSERT_TRUE(lo.filesystem.enabled);
      const FilesystemPolicy& h = hi.filesystem;
      for (const std::string& p : lo.filesystem.read_only) {
        EXPECT_TRUE(contains(h.read_only, p) || contains(h.read_exec, p) ||
                    contains(h.read_write, p))
            << p;
      }
      for (const std::string& p : lo.filesystem.read_exec)
        EXPECT_TRUE(contains(h.read_exec, p)) << p;
      for (const std::string& p : lo.filesystem.read_write)
        EXPECT_TRUE(contains(h.read_write, p)) << p;
      for (const std::string& d : lo.devices.allow) EXPECT_TRUE(contains(hi.devices.allow, d)) << d;
    }
    if (lo.network == NetworkPolicy::kOnRequest) {
      EXPECT_EQ(hi.network, NetworkPolicy::kOnRequest);
    }
    EXPECT_TRUE(!levels[i].network || levels[i + 1].network);
    EXPECT_TRUE(at_least(hi.cgroup.memory_bytes, lo.cgroup.memory_bytes));
    EXPECT_TRUE(at_least(hi.cgroup.pids_max, lo.cgroup.pids_max));
    auto cpu = [](const CgroupLimits& c) {
      return c.cpu_percent ? std::optional<uint64_t>(*c.cpu_percent) : std::nullopt;
    };
    EXPECT_TRUE(at_least(cpu(hi.cgroup), cpu(lo.cgroup)));
    const RlimitPolicy &a = lo.rlimits, &b = hi.rlimits;
    EXPECT_TRUE(at_least(b.nofile, a.nofile));
    EXPECT_TRUE(at_least(b.fsize_bytes, a.fsize_bytes));
    EXPECT_TRUE(at_least(b.cpu_seconds, a.cpu_seconds));
    EXPECT_TRUE(at_least(b.core_bytes, a.core_bytes));
    EXPECT_TRUE(at_least(b.memlock_bytes, a.memlock_bytes));
    EXPECT_TRUE(at_least(b.stack_bytes, a.stack_bytes));
    EXPECT_TRUE(at_least(b.as_bytes, a.as_bytes));
    EXPECT_TRUE(at_least(hi.scratch_bytes, lo.scratch_bytes));
  }
}

nlohmann::json raw_policy(std::string_view level) {
  std::ifstream in(std::string(PIO_POLICY_DIR) + "/" + std::string(level) + ".json");
  return nlohmann::json::parse(in);
}

TEST(PolicyComposition, EachShippedLevelExtendsTheOneBelowAndRepeatsNoneOfItsRules) {
  EXPECT_FALSE(raw_policy("low").contains("extends"));
  std::vector<nlohmann::json> rules_below;
  auto strip = [](nlohmann::json rule) {
    rule.erase("why");
    return rule;
  };
  for (size_t i = 0; i < std::size(kLevels); ++i) {
    nlohmann::json doc = raw_policy(trust_level_name(kLevels[i]));
    if (i > 0) {
      EXPECT_EQ(doc.value("extends", ""), trust_level_name(kLevels[i - 1]));
    }
    if (!doc["seccomp"].contains("rules")) continue;
    for (const nlohmann::json& rule : doc["seccomp"]["rules"]) {
      for (const nlohmann::json& below : rules_below) {
        EXPECT_NE(strip(rule), below) << trust_level_name(kLevels[i]) << " repeats " << rule;
      }
    }
    for (const nlohmann::json& rule : doc["seccomp"]["rules"]) rules_below.push_back(strip(rule));
  }
}

// A directory of policy files for the parser tests, removed afterwards.
class PolicyFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pio-policy-XXXXXX").string();
    PIO_CHECK(mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
    std::filesystem::copy_file(std::string(PIO_POLICY_DIR) + "/low.json", dir_ / "low.json");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / (name + ".json")) << text;
  }
  // Parses `text` as <name>.json over the files written so far.
  Status parse(const std::string& name, const std::string& text) {
    write(name, text);
    return load_policy_file(dir_ / (name + ".json")).status();
  }

  std::filesystem::path dir_;
};

MATCHER_P(MentionsAll, parts, "") {
  for (const std::string& part : parts) {
    if (arg.message().find(part) == std::string::npos) return false;
  }
  return arg.code() == ErrorCode::kInvalidArgument;
}

constexpr const char* kHead = R"("schema_version": 1, "extends": "low", "trust_level": "medium")";

TEST_F(PolicyFiles, ALevelAddsOnlyWhatItNamesToItsBase) {
  auto p = load_policy_file(dir_ / "low.json");
  ASSERT_TRUE(p.ok());
  write("medium", std::string("{") + kHead + R"(, "devices": {"allow": ["/dev/kvm"]},
      "seccomp": {"rules": [{"syscalls": ["getpid"], "action": "allow"}]},
      "cgroup": {"pids_max": 100}})");
  auto m = load_policy_file(dir_ / "medium.json");
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->trust_level, TrustLevel::kMedium);
  EXPECT_EQ(m->seccomp.rules.size(), p->seccomp.rules.size() + 1);
  EXPECT_EQ(m->devices.allow, std::vector<std::string>{"/dev/kvm"});
  EXPECT_EQ(m->cgroup.pids_max, 100u);
  EXPECT_EQ(m->cgroup.memory_bytes, p->cgroup.memory_bytes);
  EXPECT_EQ(m->filesystem.read_only, p->filesystem.read_only);
  EXPECT_EQ(m->namespaces, p->namespaces);
  EXPECT_EQ(m->network, p->network);
}

TEST_F(PolicyFiles, ALevelThatWouldTakeAGrantOfItsBaseAwayIsRefusedNamingTheField) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {R"("cgroup": {"memory_bytes": 1073741824})",
       {"medium.json: cgroup.memory_bytes", "below the base's"}},
      {R"("rlimits": {"nofile": 64})", {"rlimits.nofile", "below the base's 256"}},
      {R"("scratch_bytes": 4194304)", {"scratch_bytes", "below"}},
      {R"("seccomp": {"rules": [{"syscalls": ["read"], "action": "errno", "errno": "EPERM"}]})",
       {"seccomp.rules[0].action", "must allow"}},
      {R"("seccomp": {"enabled": true})", {"seccomp.enabled", "only false"}},
      {R"("seccomp": {"default_action": "kill_process"})",
       {"seccomp.default_action: unknown field"}},
      {R"("seccomp": {"stage2_deny": []})", {"seccomp.stage2_deny: unknown field"}},
      {R"("filesystem": {"read_only": ["/etc/ld.so.cache"]})",
       {"filesystem.read_only[0]", "granted by the base already"}},
      {R"("filesystem": {"enabled": false, "read_only": ["/x"]})",
       {"filesystem.read_only", "disabled here"}},
      {R"("networks": "none")", {"networks: unknown field"}},
  };
  for (const auto& [fields, parts] : cases) {
    Status s = parse("medium", std::string("{") + kHead + ", " + fields + "}");
    EXPECT_THAT(s, MentionsAll(parts)) << fields << "\n" << s.to_string();
  }
  // Isolation the base lacks, and the network the base grants.
  write("medium", std::string("{") + kHead +
                      R"(, "namespaces": ["user", "pid", "mount"], "network": "on_request"})");
  const std::string head_high =
      R"("schema_version": 1, "extends": "medium", "trust_level": "high")";
  EXPECT_THAT(parse("high", "{" + head_high + R"(, "namespaces": ["user", "net"]})"),
              MentionsAll(std::vector<std::string>{"high.json: namespaces[1]",
                                                   "\"net\" is not one of the base's"}));
  EXPECT_THAT(parse("high", "{" + head_high + R"(, "network": "none"})"),
              MentionsAll(std::vector<std::string>{"high.json: network", "may not take it away"}));
  Status fewer = parse("high", "{" + head_high + R"(, "namespaces": ["user", "mount"]})");
  EXPECT_TRUE(fewer.ok()) << fewer.to_string();
  // A level is above its base.
  EXPECT_THAT(
      parse("again", R"({"schema_version": 1, "extends": "low", "trust_level": "low"})"),
      MentionsAll(std::vector<std::string>{"again.json: trust_level", "above its base's (low)"}));
}

TEST_F(PolicyFiles, AnExtendsCycleOrAMissingBaseIsRefused) {
  write("a", R"({"schema_version": 1, "extends": "b", "trust_level": "high"})");
  EXPECT_THAT(parse("b", R"({"schema_version": 1, "extends": "a", "trust_level": "high"})"),
              MentionsAll(std::vector<std::string>{"extends", "a cycle: b -> a -> b"}));
  EXPECT_THAT(parse("c", R"({"schema_version": 1, "extends": "c", "trust_level": "high"})"),
              MentionsAll(std::vector<std::string>{"c.json: extends", "a cycle: c -> c"}));
  EXPECT_THAT(
      parse("d", R"({"schema_version": 1, "extends": "nosuch", "trust_level": "high"})"),
      MentionsAll(std::vector<std::string>{"d.json: extends", "base \"nosuch\"", "nosuch.json"}));
  EXPECT_THAT(parse("e", R"({"schema_version": 1, "extends": "../low", "trust_level": "high"})"),
              MentionsAll(std::vector<std::string>{"e.json: extends", "not a policy name"}));
  // A base that does not parse fails the level, naming the base's file.
  write("broken", R"({"schema_version": 1, "extends": "low", "trust_level": "medium", "x": 1})");
  EXPECT_THAT(parse("f", R"({"schema_version": 1, "extends": "broken", "trust_level": "high"})"),
              MentionsAll(std::vector<std::string>{"broken.json: x: unknown field"}));
  // Without a directory to read the base from (a document parsed on its own).
  auto alone = parse_policy(std::string("{") + kHead + "}", "medium.json");
  EXPECT_THAT(alone.status(), MentionsAll(std::vector<std::string>{"medium.json: extends"}));
}

}  // namespace
}  // namespace pio::sandbox::testing
