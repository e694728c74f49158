#include "gatehouse/update_log.hpp"

#include <charconv>
#include <cstdint>
#include <system_error>

namespace gatehouse {
namespace {

// `<ms>-<seq>` into its two numbers; false unless `id` is exactly that.
bool parse(std::string_view id, std::uint64_t& ms, std::uint64_t& seq) noexcept {
    const auto dash = id.find('-');
    if (dash == std::string_view::npos || dash == 0 || dash + 1 == id.size()) return false;
    const char* const begin = id.data();
    const char* const end = begin + id.size();
    const auto a = std::from_chars(begin, begin + dash, ms);
    if (a.ec != std::errc() || a.ptr != begin + dash) return false;
    const auto b = std::from_chars(begin + dash + 1, end, seq);
    return b.ec == std::errc() && b.ptr == end;
}

}  // namespace

bool valid_update_id(std::string_view id) noexcept {
    std::uint64_t ms = 0;
    std::uint64_t seq = 0;
    return parse(id, ms, seq);
}

int compare_update_ids(std::string_view a, std::string_view b) noexcept {
    std::uint64_t a_ms = 0;
    std::uint64_t a_seq = 0;
    std::uint64_t b_ms = 0;
    std::uint64_t b_seq = 0;
    const bool a_ok = parse(a, a_ms, a_seq);
    const bool b_ok = parse(b, b_ms, b_seq);
    if (!a_ok || !b_ok) return static_cast<int>(a_ok) - static_cast<int>(b_ok);
    if (a_ms != b_ms) return a_ms < b_ms ? -1 : 1;
    if (a_seq != b_seq) return a_seq < b_seq ? -1 : 1;
    return 0;
}

}  // namespace gatehouse
