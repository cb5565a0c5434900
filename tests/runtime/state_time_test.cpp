// state::rfc3339_utc formats UTC by hand (glibc's gmtime_r would read /etc/localtime on the start path):
// it must agree with gmtime_r everywhere.
#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>

#include "runtime/state/state.hpp"

namespace {
std::string reference(const struct timespec& ts) {
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
    return buf;
}
}  // namespace

TEST(StateTime, Rfc3339MatchesGmtime) {
    EXPECT_EQ(trustme::state::rfc3339_utc({0, 0}), "1970-01-01T00:00:00.000000000Z");
    EXPECT_EQ(trustme::state::rfc3339_utc({951782400, 5}), "2000-02-29T00:00:00.000000005Z");  // leap day
    // Every day from 1900 to 2200, at a time of day that moves through the day, and some nanoseconds.
    for (long long d = -25567; d <= 84000; ++d) {
        struct timespec ts {
            static_cast<time_t>(d * 86400 + (d * 7919) % 86400), static_cast<long>(d % 1000000000)
        };
        if (ts.tv_nsec < 0) ts.tv_nsec = -ts.tv_nsec;
        ASSERT_EQ(trustme::state::rfc3339_utc(ts), reference(ts)) << ts.tv_sec;
    }
}
