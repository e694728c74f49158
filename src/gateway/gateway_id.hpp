#pragma once
// Gateway ids: the name an instance writes on the command stream and prefixes to its
// connection ids. `make_gateway_id()` itself is public (gatehouse/gateway.hpp); this is the
// rule both it and the options check follow.

#include <string_view>

namespace gatehouse::detail {

// One character of a gateway id: `[A-Za-z0-9_.:-]`.
bool is_gateway_id_char(char c) noexcept;

// 1-64 characters of `[A-Za-z0-9_.:-]`: short enough that connection ids and assigned
// correlation ids stay within 128 characters.
bool is_valid_gateway_id(std::string_view id) noexcept;

}  // namespace gatehouse::detail
