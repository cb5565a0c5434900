// dm-verity images end to end, inside the test VM (label vm-guest; this host has no device-mapper):
// trustme-runtime runs a bundle signed with `trustme-sign sign --image` from its image, read-only or under
// a tmpfs overlay; a corrupted data block fails the read inside the container (EIO, never other bytes);
// a hash tree that does not lead to the signed root hash refuses the start with one line; and nothing
// (state, mapping, loop device) is left after any of it. Outside the VM every test is skipped.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tests/signing/image_fixture.hpp"
#include "base/fd.hpp"

using namespace imagetest;

namespace {

class ImageVm : public ImageBundle {
protected:
    void SetUp() override {
        if (!std::getenv("TRUSTME_VM_GUEST")) GTEST_SKIP() << "runs inside the test VM only (tests/vm/run-in-vm.sh)";
    }
    void TearDown() override {
        for (const char* id : {"ro", "rw", "rw2", "eio", "tree", "imm"}) runtime({"delete", "--force", id});
    }
    void poke(uint64_t offset) {
        trustme::UniqueFd fd(::open(image.c_str(), O_RDWR | O_CLOEXEC));
        ASSERT_TRUE(fd);
        char c = 0;
        ASSERT_EQ(::pread(fd.get(), &c, 1, static_cast<off_t>(offset)), 1);
        c = static_cast<char>(c ^ 0x20);
        ASSERT_EQ(::pwrite(fd.get(), &c, 1, static_cast<off_t>(offset)), 1);
    }
};

}  // namespace

TEST_F(ImageVm, RunsFromTheImageNotTheDirectoryAndLeavesNothing) {
    make_signed(true);
    const std::string signed_pattern = slurp(rootfs + "/data/pattern");
    spit(rootfs + "/data/pattern", "unsigned change in the directory\n");  // not what runs
    Result r = runtime({"run", "-b", bundle, "ro"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, signed_pattern);
    expect_nothing_left("ro");
    set_args({"sh", "-c", "echo x > /data/new"});
    Result w = runtime({"run", "-b", bundle, "ro"});
    EXPECT_NE(w.status, 0);
    EXPECT_NE(w.err.find("Read-only file system"), std::string::npos) << w.err;
    expect_nothing_left("ro");
}

TEST_F(ImageVm, WritableRootIsAnOverlayAndTheImageStaysAsSigned) {
    make_signed(false);
    const std::string signed_pattern = slurp(rootfs + "/data/pattern");
    set_args({"sh", "-c", "echo changed > /data/pattern && cat /data/pattern"});
    Result w = runtime({"run", "-b", bundle, "rw"});
    EXPECT_EQ(w.status, 0) << w.err;
    EXPECT_EQ(w.out, "changed\n");
    expect_nothing_left("rw");
    set_args({"cat", "/data/pattern"});
    Result r = runtime({"run", "-b", bundle, "rw2"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, signed_pattern);
    expect_nothing_left("rw2");
}

TEST_F(ImageVm, CorruptedDataBlockFailsTheReadInTheContainer) {
    make_signed(true);
    auto im = signed_image();
    const std::string data = slurp(image).substr(0, im.hash_offset);
    const size_t at = data.find("signed-block-content-400\n");  // in the file's second or third block
    ASSERT_NE(at, std::string::npos);
    poke(at + 7);  // "signed-" -> "signed-" with one bit flipped in the 8th byte
    Result r = runtime({"run", "-b", bundle, "eio"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("Input/output error"), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("signed-block-content-400"), std::string::npos) << "bad data was returned";
    EXPECT_EQ(r.out.find("signed-Block"), std::string::npos) << "bad data was returned";
    expect_nothing_left("eio");
}

TEST_F(ImageVm, HashTreeNotMatchingTheSignedRootRefusesTheStart) {
    make_signed(true);
    auto im = signed_image();
    poke(im.hash_offset + 100);  // the top level of the tree: its hash is the root hash
    Result r = runtime({"run", "-b", bundle, "tree"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("rootfs image " + image + ": does not match the signed dm-verity root hash"),
              std::string::npos)
        << r.err;
    expect_nothing_left("tree");
}

// The image is only ever read, by the start and by its teardown: an image file that cannot be opened for
// writing (immutable here; fs-verity has the same effect) runs and is taken down. A writable open of it
// would also, on overlayfs, copy the whole image up into the upper layer (ENOSPC for a large one).
TEST_F(ImageVm, ImageThatCannotBeOpenedForWritingRunsAndIsTakenDown) {
    make_signed(true);
    auto set_immutable = [&](bool on) {
        trustme::UniqueFd fd(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
        int flags = 0;
        if (!fd || ::ioctl(fd.get(), FS_IOC_GETFLAGS, &flags) != 0) return false;
        flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
        return ::ioctl(fd.get(), FS_IOC_SETFLAGS, &flags) == 0;
    };
    if (!set_immutable(true)) GTEST_SKIP() << "the filesystem of " << image << " has no immutable flag";
    ASSERT_FALSE(trustme::UniqueFd(::open(image.c_str(), O_RDWR | O_CLOEXEC)));
    Result r = runtime({"run", "-b", bundle, "imm"});
    ASSERT_TRUE(set_immutable(false));
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.find("signed-block-content-0\n"), 0u) << r.out;
    expect_nothing_left("imm");
}
