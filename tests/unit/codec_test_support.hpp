#pragma once
// Helpers shared by the client codec tests.

#include <catch2/catch.hpp>
#include <deque>
#include <string>
#include <string_view>

#include "gatehouse/client/codec.hpp"

namespace test_support {

// Encodes `e` in `format`, checking that the size query and the real encode agree.
inline std::string encode_checked(gatehouse::client::wire_format format,
                                  const gatehouse::client::envelope& e) {
    using gatehouse::client::status;
    const auto need = gatehouse::client::encode(format, e, nullptr, 0);
    REQUIRE(need.code == status::buffer_too_small);
    std::string out(need.size, '\0');
    const auto r = gatehouse::client::encode(format, e, out.data(), out.size());
    REQUIRE(r.code == status::ok);
    REQUIRE(r.size == need.size);
    return out;
}

// An envelope's payload (and codec name) are views: tests that build them from temporaries
// store the bytes here, where they live as long as the test binary.
inline std::string_view keep(std::string_view bytes) {
    static std::deque<std::string> store;  // push_back never moves the existing elements
    store.emplace_back(bytes);
    return store.back();
}

}  // namespace test_support
