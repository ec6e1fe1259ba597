#include "pio/ipc/errno_text.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace pio {
namespace {

TEST(ErrnoText, NamesAKnownErrno) {
  EXPECT_EQ(errno_text(ENOENT), "No such file or directory");
  EXPECT_EQ(errno_text(EACCES), "Permission denied");
}

TEST(ErrnoText, SaysUnknownForANumberNoErrnoHas) {
  EXPECT_EQ(errno_text(-1), "unknown error");
  EXPECT_EQ(errno_text(1 << 20), "unknown error");
}

}  // namespace
}  // namespace pio
