// Error carries the errno next to the text (base/error.hpp), and the sync socket carries both, with the fd
// of a packet owned by the receiver (runtime/process/sync.hpp).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <stdexcept>

#include "base/error.hpp"
#include "base/owned.hpp"
#include "runtime/process/sync.hpp"

using trustme::Error;

namespace {

template <class F>
Error caught(F f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    ADD_FAILURE() << "nothing thrown";
    return Error("");
}

}  // namespace

TEST(Error, FailErrnoCarriesErrnoAndWordsIt) {
    Error e = caught([] {
        errno = ENOENT;
        trustme::fail_errno("open x");
    });
    EXPECT_EQ(e.code(), ENOENT);
    EXPECT_STREQ(e.what(), "open x: No such file or directory");
    e = caught([] { trustme::fail(EACCES, "open y"); });
    EXPECT_EQ(e.code(), EACCES);
    EXPECT_STREQ(e.what(), "open y: Permission denied");
}

TEST(Error, TextOnlyFailuresHaveNoCode) {
    Error e = caught([] { trustme::fail("bad"); });
    EXPECT_EQ(e.code(), 0);
    EXPECT_STREQ(e.what(), "bad");
    EXPECT_EQ(trustme::error_code(std::runtime_error("x")), 0);
    EXPECT_EQ(trustme::error_code(Error("x", EIO)), EIO);
    EXPECT_EQ(trustme::error_code(trustme::UsageError("x")), 0);
}

TEST(Sync, AnErrorCrossesWithItsCode) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    trustme::UniqueFd a(sv[0]), b(sv[1]);
    trustme::process::sync::send_error(a.get(), Error("mount /proc: Permission denied", EACCES));
    trustme::process::sync::Packet p;
    ASSERT_TRUE(trustme::process::sync::recv(b.get(), p));
    EXPECT_EQ(p.type, trustme::process::sync::Msg::Error);
    EXPECT_EQ(p.code, EACCES);
    EXPECT_EQ(p.text, "mount /proc: Permission denied");
    EXPECT_FALSE(p.fd);

    trustme::process::sync::send_error(a.get(), std::runtime_error("no code"));
    ASSERT_TRUE(trustme::process::sync::recv(b.get(), p));
    EXPECT_EQ(p.code, 0);
    EXPECT_EQ(p.text, "no code");
}

TEST(Sync, TheReceiverOwnsAPacketsFd) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    trustme::UniqueFd a(sv[0]), b(sv[1]);
    trustme::UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(null);
    trustme::process::sync::send(a.get(), trustme::process::sync::Msg::ConsoleFd, "pty", null.get());
    int got = -1;
    {
        trustme::process::sync::Packet p;
        ASSERT_TRUE(trustme::process::sync::recv(b.get(), p));
        ASSERT_TRUE(p.fd);
        got = p.fd.get();
        EXPECT_GE(::fcntl(got, F_GETFD), 0);
    }
    EXPECT_EQ(::fcntl(got, F_GETFD), -1) << "closed with the packet";
    EXPECT_EQ(errno, EBADF);
}
