// Update ids (docs/protocol.md 6.4): their shape and their order.
#include "gatehouse/update_log.hpp"

#include <catch2/catch.hpp>

using gatehouse::compare_update_ids;
using gatehouse::valid_update_id;

TEST_CASE("update ids are two decimal numbers joined by a dash") {
    CHECK(valid_update_id("0-0"));
    CHECK(valid_update_id("1700000000000-12"));
    CHECK(valid_update_id("18446744073709551615-18446744073709551615"));
    CHECK_FALSE(valid_update_id(""));
    CHECK_FALSE(valid_update_id("12"));
    CHECK_FALSE(valid_update_id("-1"));
    CHECK_FALSE(valid_update_id("1-"));
    CHECK_FALSE(valid_update_id("1-2-3"));
    CHECK_FALSE(valid_update_id("1-2x"));
    CHECK_FALSE(valid_update_id("+1-2"));
    CHECK_FALSE(valid_update_id(" 1-2"));
    CHECK_FALSE(valid_update_id("18446744073709551616-0"));  // past 64 bits
}

TEST_CASE("update ids compare as two numbers, malformed ones first") {
    CHECK(compare_update_ids("10-0", "9-5") > 0);
    CHECK(compare_update_ids("9-10", "9-9") > 0);
    CHECK(compare_update_ids("9-9", "9-9") == 0);
    CHECK(compare_update_ids("9-8", "9-9") < 0);
    CHECK(compare_update_ids("x", "0-0") < 0);
    CHECK(compare_update_ids("0-0", "x") > 0);
    CHECK(compare_update_ids("x", "y") == 0);
}
