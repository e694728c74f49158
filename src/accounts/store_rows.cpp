#include "accounts/store_rows.hpp"

#include <sodium.h>

#include <array>
#include <cstddef>

namespace gatehouse::detail {

std::string new_player_id() {
    constexpr std::size_t id_bytes = 12;
    std::array<unsigned char, id_bytes> raw{};
    std::array<char, 2 * id_bytes + 1> hex{};
    // The stores' open functions have run sodium_init.
    randombytes_buf(raw.data(), raw.size());
    sodium_bin2hex(hex.data(), hex.size(), raw.data(), raw.size());
    return "p_" + std::string(hex.data(), 2 * id_bytes);
}

}  // namespace gatehouse::detail
