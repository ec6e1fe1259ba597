#include "pio/runtime/stop_strings.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pio::runtime {
namespace {

TEST(StopStringScanner, HoldsBackAPossibleStartUntilItIsDecided) {
  StopStringScanner scanner({"</end>"});
  EXPECT_EQ(scanner.push("hello <"), "hello ");
  EXPECT_EQ(scanner.push("/e"), "");
  EXPECT_EQ(scanner.push("x"), "</ex");  // not the stop string after all
  EXPECT_FALSE(scanner.stopped());
  EXPECT_EQ(scanner.push(" a</en"), " a");
  EXPECT_EQ(scanner.push("d> trailing"), "");
  EXPECT_TRUE(scanner.stopped());
  EXPECT_EQ(scanner.matched(), "</end>");
  EXPECT_EQ(scanner.push("more"), "");
}

TEST(StopStringScanner, CutsTheTextRightBeforeTheEarliestStopString) {
  StopStringScanner scanner({"bb", "ab"});
  EXPECT_EQ(scanner.push("xxabb"), "xx");
  EXPECT_EQ(scanner.matched(), "ab");
}

TEST(StopStringScanner, FinishReturnsTheHeldBackTail) {
  StopStringScanner scanner({"STOP"});
  EXPECT_EQ(scanner.push("the end ST"), "the end ");
  EXPECT_EQ(scanner.finish(), "ST");
  EXPECT_FALSE(scanner.stopped());
}

TEST(StopStringScanner, WithoutStopStringsPassesEverythingThrough) {
  StopStringScanner scanner({"", ""});
  EXPECT_EQ(scanner.push("abc"), "abc");
  EXPECT_EQ(scanner.finish(), "");
}

TEST(StopStringScanner, NeverSplitsAUtf8Character) {
  StopStringScanner scanner({"\xC3\xA9!"});  // "é!"
  EXPECT_EQ(scanner.push("caf\xC3\xA9"), "caf");
  EXPECT_EQ(scanner.push("?"), "\xC3\xA9?");
}

}  // namespace
}  // namespace pio::runtime
