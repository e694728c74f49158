#include "state.hpp"

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <system_error>
#include <utility>

namespace gatehouse_demo::game {
namespace {

bool read_int(const nlohmann::json& object, const char* key, std::int64_t& out) {
    const auto it = object.find(key);
    if (it == object.end() || !it->is_number_integer()) return false;
    out = it->get<std::int64_t>();
    return true;
}

// "ms-seq" into its two numbers; false unless it is exactly that.
bool parse_entry_id(const std::string& id, std::uint64_t& ms, std::uint64_t& seq) {
    const auto dash = id.find('-');
    if (dash == std::string::npos) return false;
    const char* const begin = id.data();
    const char* const end = begin + id.size();
    const auto a = std::from_chars(begin, begin + dash, ms);
    const auto b = std::from_chars(begin + dash + 1, end, seq);
    return a.ec == std::errc() && a.ptr == begin + dash && dash > 0 && b.ec == std::errc() &&
           b.ptr == end && dash + 1 < id.size();
}

}  // namespace

bool entry_after(const std::string& a, const std::string& b) {
    std::uint64_t a_ms = 0;
    std::uint64_t a_seq = 0;
    std::uint64_t b_ms = 0;
    std::uint64_t b_seq = 0;
    if (!parse_entry_id(a, a_ms, a_seq)) return false;
    if (!parse_entry_id(b, b_ms, b_seq)) return true;  // nothing valid applied yet
    return a_ms != b_ms ? a_ms > b_ms : a_seq > b_seq;
}

bool state::operator==(const state& o) const {
    return coins == o.coins && dishes == o.dishes && level == o.level && xp == o.xp &&
           cook_power == o.cook_power && sell_price == o.sell_price &&
           passive_rate == o.passive_rate && upgrades.knife == o.upgrades.knife &&
           upgrades.stove == o.upgrades.stove && upgrades.waiter == o.upgrades.waiter &&
           last_passive_ms == o.last_passive_ms && revision == o.revision;
}

state fresh_state(std::int64_t now_ms) {
    state s;
    s.last_passive_ms = now_ms;
    return s;
}

nlohmann::json to_json(const state& s) {
    return {
        {"coins", s.coins},
        {"dishes", s.dishes},
        {"level", s.level},
        {"xp", s.xp},
        {"cook_power", s.cook_power},
        {"sell_price", s.sell_price},
        {"passive_rate", s.passive_rate},
        {"upgrades",
         {{"knife", s.upgrades.knife}, {"stove", s.upgrades.stove}, {"waiter", s.upgrades.waiter}}},
        {"last_passive_ms", s.last_passive_ms},
        {"revision", s.revision},
    };
}

bool from_json(const nlohmann::json& j, state& out) {
    if (!j.is_object()) return false;
    state s;
    const std::initializer_list<std::pair<const char*, std::int64_t*>> fields = {
        {"coins", &s.coins},
        {"dishes", &s.dishes},
        {"level", &s.level},
        {"xp", &s.xp},
        {"cook_power", &s.cook_power},
        {"sell_price", &s.sell_price},
        {"passive_rate", &s.passive_rate},
        {"last_passive_ms", &s.last_passive_ms},
        {"revision", &s.revision},
    };
    for (const auto& [key, field] : fields) {
        if (!read_int(j, key, *field)) return false;
    }
    const auto up = j.find("upgrades");
    if (up == j.end() || !up->is_object() || !read_int(*up, "knife", s.upgrades.knife) ||
        !read_int(*up, "stove", s.upgrades.stove) || !read_int(*up, "waiter", s.upgrades.waiter)) {
        return false;
    }
    // Negative counters or clock would break the rules' arithmetic; no command makes them.
    for (const auto& [key, field] : fields) {
        if (*field < 0) return false;
    }
    if (s.upgrades.knife < 0 || s.upgrades.stove < 0 || s.upgrades.waiter < 0) return false;
    if (s.level < 1) return false;
    out = s;
    return true;
}

}  // namespace gatehouse_demo::game
