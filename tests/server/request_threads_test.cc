// The server's last edges against exceptions: the request thread pool and what an escaped
// exception is answered with.

#include "request_threads.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <stdexcept>

#include "escaped_exception.h"
#include "openai_protocol.h"

namespace pio::server {
namespace {

using ::testing::HasSubstr;

TEST(RequestThreads, AWorkItemThatThrowsDoesNotEndItsThread) {
  RequestThreads threads(1);
  threads.submit(0, [] { throw std::runtime_error("a bug in a handler"); });
  std::promise<void> ran;
  threads.submit(0, [&ran] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  threads.stop();
}

TEST(EscapedException, IsAnsweredAsA500WithoutItsDetails) {
  Status status;
  try {
    throw std::runtime_error("secret detail from a worker");
  } catch (...) {
    status = escaped_exception("a test handler");
  }
  EXPECT_EQ(status.code(), ErrorCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("a test handler"));
  EXPECT_THAT(status.message(), ::testing::Not(HasSubstr("secret detail")));
  const ApiError answer = api_error_from(status);
  EXPECT_EQ(answer.http_status, 500);
  EXPECT_EQ(answer.type, "server_error");
}

}  // namespace
}  // namespace pio::server
