#include "pio/plugin_sdk/path_guard.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace pio::sdk {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A model root with a file, a directory, a symlink inside and symlinks pointing out of it, next to
// a directory outside the root holding a "secret".
class PathGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pio-path-guard-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ / "models" / "qwen3";
    fs::create_directories(root_ / "weights");
    fs::create_directories(base_ / "outside");
    std::ofstream(root_ / "config.json") << "{}";
    std::ofstream(root_ / "weights" / "model.safetensors") << "w";
    std::ofstream(base_ / "outside" / "secret") << "s";
    fs::create_symlink("weights/model.safetensors", root_ / "alias");
    fs::create_symlink(base_ / "outside" / "secret", root_ / "escape_absolute");
    fs::create_symlink("../../outside/secret", root_ / "escape_relative");
    fs::create_symlink("/proc/self/root" + (base_ / "outside" / "secret").string(),
                       root_ / "escape_proc");
    auto guard = PathGuard::create({root_});
    ASSERT_TRUE(guard.ok()) << guard.status().to_string();
    guard_.emplace(std::move(*guard));
  }
  void TearDown() override { fs::remove_all(base_); }

  // The refusal must say which path and which roots.
  void expect_refused(const std::string& requested) {
    auto resolved = guard_->resolve(requested);
    ASSERT_FALSE(resolved.ok()) << requested << " was accepted as " << resolved->string();
    EXPECT_EQ(resolved.status().code(), ErrorCode::kPermissionDenied)
        << resolved.status().to_string();
    EXPECT_THAT(resolved.status().message(), HasSubstr("\"" + requested + "\""));
    EXPECT_THAT(resolved.status().message(), HasSubstr("[" + root_.string() + "]"));
  }

  fs::path base_;
  fs::path root_;
  std::optional<PathGuard> guard_;
};

TEST_F(PathGuardTest, DotDotOutOfTheRootIsRefused) { expect_refused("../../etc/passwd"); }

TEST_F(PathGuardTest, DotDotOutOfTheRootIsRefusedEvenWhenItComesBackIn) {
  expect_refused("../../../../../../../../etc/passwd");
  expect_refused((root_ / ".." / "qwen3" / ".." / ".." / "outside" / "secret").string());
}

TEST_F(PathGuardTest, AbsolutePathOutsideTheRootsIsRefused) {
  expect_refused("/etc/passwd");
  expect_refused((base_ / "outside" / "secret").string());
}

TEST_F(PathGuardTest, SiblingDirectorySharingThePrefixIsRefused) {
  fs::create_directories(base_ / "models" / "qwen3-evil");
  expect_refused((base_ / "models" / "qwen3-evil").string());
}

TEST_F(PathGuardTest, SymlinkPointingOutIsRefusedNamingWhereItLeads) {
  for (const char* link : {"escape_absolute", "escape_relative"}) {
    expect_refused(link);
    auto resolved = guard_->resolve(link);
    EXPECT_THAT(resolved.status().message(), HasSubstr((base_ / "outside" / "secret").string()));
  }
}

TEST_F(PathGuardTest, ProcMagicLinksAreRefused) {
  expect_refused("/proc/self/root" + (root_ / "config.json").string());
  expect_refused("/proc/self/root/etc/passwd");
  expect_refused("escape_proc");
}

TEST_F(PathGuardTest, PathsInsideTheRootResolveToTheirCanonicalForm) {
  auto relative = guard_->resolve("weights/model.safetensors");
  ASSERT_TRUE(relative.ok()) << relative.status().to_string();
  EXPECT_EQ(*relative, root_ / "weights" / "model.safetensors");

  auto absolute = guard_->resolve((root_ / "weights" / ".." / "config.json").string());
  ASSERT_TRUE(absolute.ok()) << absolute.status().to_string();
  EXPECT_EQ(*absolute, root_ / "config.json");

  auto via_symlink = guard_->resolve("alias");
  ASSERT_TRUE(via_symlink.ok()) << via_symlink.status().to_string();
  EXPECT_EQ(*via_symlink, root_ / "weights" / "model.safetensors");

  auto the_root = guard_->resolve(root_.string());
  ASSERT_TRUE(the_root.ok()) << the_root.status().to_string();
  EXPECT_EQ(*the_root, root_);
}

TEST_F(PathGuardTest, MissingFileInsideTheRootIsNotFound) {
  auto resolved = guard_->resolve("weights/missing.safetensors");
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.status().code(), ErrorCode::kNotFound);
  EXPECT_THAT(resolved.status().message(), HasSubstr("weights/missing.safetensors"));
}

TEST(PathGuard, RootsThatWouldLetMagicLinksInAreRefused) {
  for (const char* root : {"/", "/proc", "/proc/self", "/sys", "/dev"}) {
    auto guard = PathGuard::create({root});
    ASSERT_FALSE(guard.ok()) << root;
    EXPECT_EQ(guard.status().code(), ErrorCode::kInvalidArgument) << root;
  }
  EXPECT_EQ(PathGuard::create({"relative/root"}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(PathGuard::create({"/nonexistent/pio/root"}).status().code(), ErrorCode::kNotFound);
}

TEST(PathGuard, WithinComparesWholeComponents) {
  EXPECT_TRUE(path_is_within("/srv/models/a", "/srv/models"));
  EXPECT_TRUE(path_is_within("/srv/models", "/srv/models"));
  EXPECT_TRUE(path_is_within("/srv/models/a", "/srv/models/"));
  EXPECT_FALSE(path_is_within("/srv/models2/a", "/srv/models"));
  EXPECT_FALSE(path_is_within("/srv", "/srv/models"));
}

TEST_F(PathGuardTest, OpenBeneathOpensFilesAndSymlinksInsideTheRoot) {
  UniqueFd root(open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(root.valid());
  for (const char* path :
       {"config.json", "weights/model.safetensors", "alias", "weights/../config.json", "."}) {
    auto fd = open_beneath(root.get(), path);
    EXPECT_TRUE(fd.ok()) << path << ": " << fd.status().to_string();
  }
}

TEST_F(PathGuardTest, OpenBeneathRefusesEveryWayOut) {
  UniqueFd root(open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(root.valid());
  const std::string secret = (base_ / "outside" / "secret").string();
  const std::string proc = "/proc/self/root" + (root_ / "config.json").string();
  for (const std::string& path :
       {std::string("../../etc/passwd"), std::string("/etc/passwd"), secret,
        std::string("escape_absolute"), std::string("escape_relative"), std::string("escape_proc"),
        proc}) {
    auto fd = open_beneath(root.get(), path);
    ASSERT_FALSE(fd.ok()) << path << " was opened";
    EXPECT_EQ(fd.status().code(), ErrorCode::kPermissionDenied)
        << path << ": " << fd.status().to_string();
    EXPECT_THAT(fd.status().message(), HasSubstr("\"" + path + "\""));
  }
}

}  // namespace
}  // namespace pio::sdk
