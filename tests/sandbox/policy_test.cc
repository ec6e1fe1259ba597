// The policy files parse, compile for this kernel, and bad policies are refused naming the field.

#include "pio/sandbox/policy.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "pio/sandbox/probe.h"

namespace pio::sandbox {
namespace {

std::string read_policy_text(std::string_view level) {
  std::ifstream in(std::string(PIO_POLICY_DIR) + "/" + std::string(level) + ".json");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Replaces the first occurrence of `from` in the low policy and parses the result.
Status parse_low_with(std::string_view from, std::string_view to) {
  std::string text = read_policy_text("low");
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  text.replace(at, from.size(), to);
  return parse_policy(text, "low.json").status();
}

TEST(Policy, EveryShippedPolicyParses) {
  for (TrustLevel level :
       {TrustLevel::kLow, TrustLevel::kMedium, TrustLevel::kHigh, TrustLevel::kMaximum}) {
    auto p = load_policy(PIO_POLICY_DIR, level);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    EXPECT_EQ(p->trust_level, level);
  }
}

TEST(Policy, LowTrustHasEveryNamespaceNoNetworkAndFailsClosed) {
  auto p = load_policy(PIO_POLICY_DIR, TrustLevel::kLow);
  ASSERT_TRUE(p.ok());
  for (Namespace ns : {Namespace::kUser, Namespace::kPid, Namespace::kNet, Namespace::kIpc,
                       Namespace::kMount, Namespace::kUts}) {
    EXPECT_TRUE(p->has_namespace(ns)) << namespace_name(ns);
  }
  EXPECT_EQ(p->network, NetworkPolicy::kNone);
  EXPECT_EQ(p->on_missing_kernel_feature, MissingFeature::kFail);
  EXPECT_TRUE(p->devices.allow.empty());
  EXPECT_TRUE(p->seccomp.enabled);
  EXPECT_TRUE(p->filesystem.enabled);
}

TEST(Policy, MaximumTrustFiltersNoSyscallsButKeepsCgroupAndRlimits) {
  auto p = load_policy(PIO_POLICY_DIR, TrustLevel::kMaximum);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->seccomp.enabled);
  EXPECT_FALSE(p->filesystem.enabled);
  EXPECT_TRUE(p->namespaces.empty());
  EXPECT_TRUE(p->cgroup.pids_max.has_value());
  EXPECT_TRUE(p->rlimits.nofile.has_value());
}

TEST(Policy, MediumAndUpGrantGpuDeviceNodes) {
  for (TrustLevel level : {TrustLevel::kMedium, TrustLevel::kHigh}) {
    auto p = load_policy(PIO_POLICY_DIR, level);
    ASSERT_TRUE(p.ok());
    EXPECT_NE(std::find(p->devices.allow.begin(), p->devices.allow.end(), "/dev/nvidiactl"),
              p->devices.allow.end());
  }
}

TEST(Policy, UnknownTopLevelFieldIsRefusedByName) {
  Status s = parse_low_with("\"network\": \"none\"", "\"network\": \"none\", \"netwrok\": 1");
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("low.json: netwrok: unknown field"), std::string::npos) << s.message();
}

TEST(Policy, UnknownNestedFieldIsRefusedWithItsPath) {
  Status s = parse_low_with("\"pids_max\": 64", "\"pids_max\": 64, \"pid_max\": 3");
  EXPECT_NE(s.message().find("cgroup.pid_max: unknown field"), std::string::npos) << s.message();
}

TEST(Policy, UnknownSyscallNameIsRefusedWithItsIndex) {
  Status s = parse_low_with("\"readv\"", "\"readvv\"");
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("seccomp.rules[0].syscalls[2]: unknown syscall \"readvv\""),
            std::string::npos)
      << s.message();
}

TEST(Policy, UnknownConstantInAnArgumentFilterIsRefused) {
  Status s = parse_low_with("\"value\": \"AF_UNIX\"", "\"value\": \"AF_UNIXX\"");
  EXPECT_NE(s.message().find(".args[0].value: unknown constant \"AF_UNIXX\""), std::string::npos)
      << s.message();
}

TEST(Policy, BadValuesAreRefusedNamingTheField) {
  EXPECT_NE(
      parse_low_with("\"pids_max\": 64", "\"pids_max\": -1").message().find("cgroup.pids_max"),
      std::string::npos);
  EXPECT_NE(
      parse_low_with("\"nofile\": 256", "\"nofile\": \"many\"").message().find("rlimits.nofile"),
      std::string::npos);
  EXPECT_NE(parse_low_with("\"trust_level\": \"low\"", "\"trust_level\": \"lowest\"")
                .message()
                .find("trust_level: \"lowest\" is not one of"),
            std::string::npos);
  EXPECT_NE(parse_low_with("\"pid\", ", "\"pdi\", ").message().find("namespaces[1]"),
            std::string::npos);
  EXPECT_NE(parse_low_with("\"/etc/ld.so.cache\"", "\"etc/ld.so.cache\"")
                .message()
                .find("filesystem.read_only[2]: \"etc/ld.so.cache\" is not an absolute path"),
            std::string::npos);
  EXPECT_NE(parse_low_with("\"$SCRATCH\"", "\"$SCRATCHES\"").message().find("unknown placeholder"),
            std::string::npos);
  EXPECT_NE(parse_low_with("\"default_errno\": \"EPERM\"", "\"default_errno\": \"EPREM\"")
                .message()
                .find("seccomp.default_errno: unknown errno \"EPREM\""),
            std::string::npos);
  EXPECT_NE(parse_low_with("\"action\": \"allow\"", "\"action\": \"permit\"")
                .message()
                .find("seccomp.rules[0].action"),
            std::string::npos);
}

TEST(Policy, AllowAsDefaultActionIsRefused) {
  Status s = parse_low_with("\"default_action\": \"errno\"", "\"default_action\": \"allow\"");
  EXPECT_NE(s.message().find("seccomp.default_action"), std::string::npos) << s.message();
}

TEST(Policy, MissingRequiredFieldIsNamed) {
  Status s = parse_low_with("\"network\": \"none\",", "");
  EXPECT_NE(s.message().find("network: missing field"), std::string::npos) << s.message();
}

TEST(Policy, InvalidJsonIsRefused) {
  auto p = parse_policy("{\"schema_version\": 1,", "broken.json");
  EXPECT_EQ(p.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("broken.json: not valid JSON"), std::string::npos);
}

TEST(Policy, ANumberTooLargeForADoubleIsRefusedNotThrown) {
  auto p = parse_policy("99e9998", "huge.json");
  EXPECT_EQ(p.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("huge.json: not valid JSON"), std::string::npos)
      << p.status().message();
}

TEST(Policy, MissingFileIsNotFound) {
  auto p = load_policy_file("/nonexistent/pio/low.json");
  EXPECT_EQ(p.status().code(), ErrorCode::kNotFound);
}

TEST(Probe, ReportsWhatThisKernelGives) {
  KernelFeatures f = probe();
  EXPECT_FALSE(f.kernel_release.empty());
  EXPECT_TRUE(f.seccomp_filter);
  EXPECT_TRUE(f.pidfd);
  EXPECT_GE(f.landlock_abi, 1);
  // This project's machines: cgroup v1 with memory, pids and cpu, or a delegated v2.
  EXPECT_NE(f.cgroup.version, 0);
  std::string text = f.to_string();
  EXPECT_NE(text.find("landlock ABI"), std::string::npos);
  EXPECT_NE(text.find("cgroup: v"), std::string::npos);
}

}  // namespace
}  // namespace pio::sandbox
