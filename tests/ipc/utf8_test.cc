#include "pio/ipc/utf8.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace pio::ipc {
namespace {

using namespace std::string_literals;

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, ValidTextComesBackUnchanged) {
  const std::string text =
      "plain ASCII, caf\xC3\xA9, \xE2\x82\xAC, \xF0\x9F\x98\x80 and a NUL \0 too"s;
  EXPECT_TRUE(is_valid_utf8(text));
  EXPECT_EQ(to_valid_utf8(text), text);
  EXPECT_EQ(to_valid_utf8(""), "");
}

TEST(Utf8, AStrayByteBecomesOneReplacementCharacter) {
  EXPECT_FALSE(is_valid_utf8("a\xFFz"));
  EXPECT_EQ(to_valid_utf8("a\xFFz"), "a" + kFffd + "z");
  EXPECT_EQ(to_valid_utf8("\x80\x80"), kFffd + kFffd);  // lone continuation bytes, one each
}

TEST(Utf8, ATruncatedCharacterBecomesOneReplacementCharacter) {
  // The first two bytes of U+20AC, then ASCII: one U+FFFD for the maximal subpart.
  EXPECT_EQ(to_valid_utf8("x\xE2\x82y"), "x" + kFffd + "y");
  EXPECT_EQ(to_valid_utf8("end\xF0\x9F\x98"), "end" + kFffd);
}

TEST(Utf8, OverlongFormsSurrogatesAndCodePointsPastTheMaximumAreRefused) {
  for (const std::string& bad :
       {"\xC0\xAF"s, "\xE0\x80\xAF"s, "\xED\xA0\x80"s, "\xF4\x90\x80\x80"s, "\xF5\x80\x80\x80"s}) {
    EXPECT_FALSE(is_valid_utf8(bad));
    const std::string fixed = to_valid_utf8(bad);
    EXPECT_TRUE(is_valid_utf8(fixed));
    EXPECT_NE(fixed.find(kFffd), std::string::npos);
  }
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF itself is fine
}

TEST(Utf8, EveryByteStringComesOutAsSomethingAStrictJsonDumpAccepts) {
  // Every 1- and 2-byte string, and 3-byte strings around the awkward lead bytes.
  auto check = [](const std::string& bytes) {
    const std::string fixed = to_valid_utf8(bytes);
    ASSERT_TRUE(is_valid_utf8(fixed)) << testing::PrintToString(bytes);
    EXPECT_NO_THROW((void)nlohmann::json(fixed).dump()) << testing::PrintToString(bytes);
  };
  for (int a = 0; a < 256; ++a) {
    check(std::string(1, static_cast<char>(a)));
    for (int b = 0; b < 256; ++b) check({static_cast<char>(a), static_cast<char>(b)});
  }
  for (int lead : {0xE0, 0xED, 0xF0, 0xF4}) {
    for (int b = 0x70; b < 0xD0; ++b) {
      for (int c = 0x70; c < 0xD0; ++c) {
        check({static_cast<char>(lead), static_cast<char>(b), static_cast<char>(c)});
      }
    }
  }
}

}  // namespace
}  // namespace pio::ipc
