#pragma once
// The library's internal spellings of the public `redis_url` (include/gatehouse/redis_url.hpp),
// used by the asynchronous connection and its tests.

#include "gatehouse/redis_url.hpp"

namespace gatehouse::detail::redis {

using url = redis_url;

inline std::error_code parse_url(std::string_view text, url& out) {
    return parse_redis_url(text, out);
}

using gatehouse::redacted;

}  // namespace gatehouse::detail::redis
