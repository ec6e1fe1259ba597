#include "pio/ipc/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <memory>

namespace pio {
namespace {

TEST(Status, DefaultConstructedStatusIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.to_string(), "ok");
}

TEST(Status, ToStringNamesTheCodeAndTheMessage) {
  Status s = invalid_argument_error("load_model: \"../x\" is outside the plugin's model roots");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.to_string(),
            "invalid_argument: load_model: \"../x\" is outside the plugin's model roots");
}

TEST(Status, WithContextPrefixesTheMessageAndKeepsTheCode) {
  Status s = not_found_error("no such plugin").with_context("activate_plugin(\"echo\")");
  EXPECT_EQ(s.code(), ErrorCode::kNotFound);
  EXPECT_EQ(s.message(), "activate_plugin(\"echo\"): no such plugin");
  EXPECT_TRUE(ok_status().with_context("x").ok());
}

TEST(Status, ErrnoStatusMapsErrnoToTheCanonicalCode) {
  EXPECT_EQ(errno_status("open", ENOENT).code(), ErrorCode::kNotFound);
  EXPECT_EQ(errno_status("open", EACCES).code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(errno_status("mmap", ENOMEM).code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(errno_status("send", EPIPE).code(), ErrorCode::kUnavailable);
  EXPECT_EQ(errno_status("landlock", ENOSYS).code(), ErrorCode::kUnimplemented);
  Status s = errno_status("open(/etc/shadow)", EACCES);
  EXPECT_NE(s.message().find("open(/etc/shadow)"), std::string::npos);
  EXPECT_NE(s.message().find("errno 13"), std::string::npos);
}

TEST(Status, EveryCodeHasAStableName) {
  EXPECT_EQ(error_code_name(ErrorCode::kWorkerCrashed), "worker_crashed");
  EXPECT_EQ(error_code_name(ErrorCode::kDeadlineExceeded), "deadline_exceeded");
  EXPECT_EQ(error_code_name(ErrorCode::kResourceExhausted), "resource_exhausted");
}

Result<int> parse_positive(int v) {
  if (v <= 0) return invalid_argument_error("not positive");
  return v;
}

Status use_positive(int v, int* out) {
  PIO_ASSIGN_OR_RETURN(int x, parse_positive(v));
  *out = x;
  return ok_status();
}

TEST(Result, HoldsAValueOrTheStatusSayingWhyNot) {
  Result<int> good = parse_positive(3);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 3);
  Result<int> bad = parse_positive(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
}

TEST(Result, AssignOrReturnPropagatesTheError) {
  int out = 0;
  EXPECT_TRUE(use_positive(5, &out).ok());
  EXPECT_EQ(out, 5);
  EXPECT_EQ(use_positive(0, &out).code(), ErrorCode::kInvalidArgument);
}

TEST(Result, HoldsMoveOnlyValues) {
  Result<std::unique_ptr<int>> r(std::make_unique<int>(7));
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ResultDeathTest, ConstructingFromAnOkStatusIsABug) {
  EXPECT_DEATH(
      {
        Result<int> r{ok_status()};
        (void)r;
      },
      "PIO_CHECK failed");
}

}  // namespace
}  // namespace pio
