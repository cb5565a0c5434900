// parse_decimal: the one reader of numbers from text; whole string, decimal, no sign, no overflow.
#include <gtest/gtest.h>

#include <cstdint>

#include "base/strings.hpp"

using trustme::parse_decimal;

TEST(ParseDecimal, AcceptsOnlyAWholeDecimalNumberThatFits) {
    EXPECT_EQ(parse_decimal<uint32_t>("0"), 0u);
    EXPECT_EQ(parse_decimal<uint32_t>("4294967295"), 4294967295u);
    EXPECT_EQ(parse_decimal<uint64_t>("18446744073709551615"), UINT64_MAX);
    EXPECT_EQ(parse_decimal<int>("017"), 17);
    for (const char* bad : {"", " 1", "1 ", "+1", "-1", "0x10", "1a", "1.5", "4294967296", "99999999999999999999"})
        EXPECT_FALSE(parse_decimal<uint32_t>(bad).has_value()) << '"' << bad << '"';
    EXPECT_FALSE(parse_decimal<int>("-5").has_value());  // no sign even for signed types
    EXPECT_FALSE(parse_decimal<int>("2147483648").has_value());
}
