#pragma once
// Comparing secrets (signatures, API keys) without leaking, through timing, how many
// leading bytes matched.

#include <openssl/crypto.h>

#include <string_view>

namespace gatehouse::detail {

// True when `a` and `b` are equal. Lengths are compared first, which reveals only the
// length; the bytes are compared in time that does not depend on their contents.
inline bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace gatehouse::detail
