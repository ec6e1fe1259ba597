// terminal_text (host/cli/terminal_text.h): what `pio` prints of a worker's strings.
#include "terminal_text.h"

#include <gtest/gtest.h>

#include <string>

namespace pio::cli {
namespace {

using namespace std::string_literals;

TEST(TerminalText, PrintableTextNewlinesAndTabsStayAsTheyAre) {
  const std::string text = "line one\n\tcaf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\n";
  EXPECT_EQ(terminal_text(text), text);
}

TEST(TerminalText, EscapeSequencesLoseTheirControlCharacters) {
  EXPECT_EQ(terminal_text("\x1b[31mred\x1b[0m"), "[31mred[0m");
  EXPECT_EQ(terminal_text("\x1b]0;title\x07 rest"), "]0;title rest");
  EXPECT_EQ(terminal_text("over\rwrite\b\x7f"), "overwrite");
  EXPECT_EQ(terminal_text("nul\0byte"s), "nulbyte");
}

TEST(TerminalText, C1ControlsAreDroppedEncodedOrRaw) {
  // U+009B (CSI) as UTF-8, and the raw byte an 8-bit terminal reads as CSI (not UTF-8: U+FFFD).
  EXPECT_EQ(terminal_text("a\xC2\x9B"s + "2Jb"), "a2Jb");
  EXPECT_EQ(terminal_text("a\x9B"s + "2Jb"), "a\xEF\xBF\xBD"s + "2Jb");
  // U+00A0 and above are printable and stay.
  EXPECT_EQ(terminal_text("\xC2\xA0\xC2\xA9"), "\xC2\xA0\xC2\xA9");
}

}  // namespace
}  // namespace pio::cli
