#include "rules.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

namespace gatehouse_demo::game {
namespace {

using json = nlohmann::json;
constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();

// The counters only grow from non-negative values; saturating keeps a session that somehow
// got huge (a hand-edited Redis key) clear of signed overflow, which would be UB.
std::int64_t add(std::int64_t a, std::int64_t b) { return a > int64_max - b ? int64_max : a + b; }

std::int64_t mul(std::int64_t a, std::int64_t b) {
    if (a == 0 || b == 0) return 0;
    return a > int64_max / b ? int64_max : a * b;
}

struct upgrade_kind {
    std::string_view name;
    std::int64_t base_cost;
};
constexpr std::array<upgrade_kind, 3> upgrade_kinds{{{"knife", 10}, {"stove", 25}, {"waiter", 50}}};

outcome refuse(const state& unchanged, error_code code, std::string message) {
    outcome out;
    out.error = code;
    out.message = std::move(message);
    out.next = unchanged;
    return out;
}

outcome accept(state next) {
    next.revision = add(next.revision, 1);
    outcome out;
    out.next = next;
    return out;
}

// An optional integer field: absent or null leaves `out` alone. False when it is there but
// not an integer (a float, even 2.0, is not: counts are whole).
bool optional_int(const json& payload, const char* key, std::int64_t& out, bool& present) {
    present = false;
    const auto it = payload.find(key);
    if (it == payload.end() || it->is_null()) return true;
    if (it->is_number_unsigned()) {
        const auto v = it->get<std::uint64_t>();
        out = v > static_cast<std::uint64_t>(int64_max) ? int64_max : static_cast<std::int64_t>(v);
    } else if (it->is_number_integer()) {
        out = it->get<std::int64_t>();
    } else {
        return false;
    }
    present = true;
    return true;
}

outcome cook(const state& s, const json& payload) {
    std::int64_t count = 1;
    bool present = false;
    if (!optional_int(payload, "count", count, present) || count < 1 || count > max_cook_count) {
        return refuse(s, error_code::invalid_payload, "cook: count must be a whole number 1-100");
    }
    state next = s;
    next.dishes = add(next.dishes, mul(count, next.cook_power));
    next.xp = add(next.xp, count);
    return accept(next);
}

outcome sell(const state& s, const json& payload) {
    std::int64_t count = s.dishes;
    bool present = false;
    if (!optional_int(payload, "count", count, present) || (present && count < 1)) {
        return refuse(s, error_code::invalid_payload, "sell: count must be a whole number >= 1");
    }
    if (count > s.dishes) {
        return refuse(s, error_code::not_enough_dishes,
                      "selling " + std::to_string(count) + " dishes, but there are only " +
                          std::to_string(s.dishes));
    }
    state next = s;
    next.dishes -= count;
    next.coins = add(next.coins, mul(count, next.sell_price));
    next.xp = add(next.xp, count);
    return accept(next);
}

outcome upgrade_buy(const state& s, const json& payload) {
    const auto it = payload.find("upgrade");
    if (it == payload.end() || !it->is_string()) {
        return refuse(s, error_code::invalid_payload,
                      "upgrade_buy: upgrade must be \"knife\", \"stove\" or \"waiter\"");
    }
    const auto& name = it->get_ref<const std::string&>();
    state next = s;
    std::int64_t* owned = name == "knife"    ? &next.upgrades.knife
                          : name == "stove"  ? &next.upgrades.stove
                          : name == "waiter" ? &next.upgrades.waiter
                                             : nullptr;
    if (owned == nullptr) {
        return refuse(s, error_code::unknown_upgrade,
                      "no upgrade is called \"" + name + "\" (knife, stove, waiter)");
    }
    const std::int64_t cost = *upgrade_cost(name, *owned);
    if (s.coins < cost) {
        return refuse(s, error_code::not_enough_coins,
                      "a " + name + " costs " + std::to_string(cost) + " coins, you have " +
                          std::to_string(s.coins));
    }
    next.coins -= cost;
    *owned = add(*owned, 1);
    if (name == "knife") next.cook_power = add(next.cook_power, 1);
    if (name == "stove") next.passive_rate = add(next.passive_rate, 1);
    if (name == "waiter") next.sell_price = add(next.sell_price, 1);
    return accept(next);
}

outcome check_level(const state& s) {
    outcome out = accept(s);
    const std::int64_t required = xp_required(s.level);
    out.level_check = level_check_result{s.xp >= required, required};
    return out;
}

outcome level_up(const state& s) {
    const std::int64_t required = xp_required(s.level);
    if (s.xp < required) {
        return refuse(s, error_code::not_enough_xp,
                      "level " + std::to_string(s.level + 1) + " needs " +
                          std::to_string(required) + " xp, you have " + std::to_string(s.xp));
    }
    state next = s;
    next.xp -= required;
    next.level = add(next.level, 1);
    next.cook_power = add(next.cook_power, 1);
    return accept(next);
}

// Whole seconds since last_passive_ms are credited, at most passive_cap_seconds of them; the
// clock moves past every whole second elapsed, so time beyond the cap is forfeited (a player
// away for a day gets 8 hours' worth, once) and the fraction of a second carries over. A
// clock behind last_passive_ms (another machine's, in Redis mode) credits nothing.
outcome passive(const state& s, std::int64_t now_ms) {
    state next = s;
    if (now_ms > s.last_passive_ms) {
        const std::int64_t whole_seconds = (now_ms - s.last_passive_ms) / 1000;
        const std::int64_t credited = std::min(whole_seconds, passive_cap_seconds);
        next.dishes = add(next.dishes, mul(next.passive_rate, credited));
        next.last_passive_ms += whole_seconds * 1000;
    }
    return accept(next);
}

outcome reset(const state& s, std::int64_t now_ms) {
    state next = fresh_state(now_ms);
    next.revision = s.revision;
    return accept(next);
}

}  // namespace

std::string_view code_name(error_code code) {
    switch (code) {
        case error_code::no_session: return "no_session";
        case error_code::invalid_payload: return "invalid_payload";
        case error_code::not_enough_dishes: return "not_enough_dishes";
        case error_code::not_enough_coins: return "not_enough_coins";
        case error_code::unknown_upgrade: return "unknown_upgrade";
        case error_code::not_enough_xp: return "not_enough_xp";
    }
    return "invalid_payload";
}

bool is_game_command(std::string_view type) {
    for (std::string_view t : {"session", "cook", "sell", "upgrade_buy", "level_check", "level_up",
                               "passive", "session_reset"}) {
        if (type == t) return true;
    }
    return false;
}

std::int64_t xp_required(std::int64_t level) { return mul(20, mul(level, level)); }

std::optional<std::int64_t> upgrade_cost(std::string_view name, std::int64_t owned) {
    for (const auto& kind : upgrade_kinds) {
        if (kind.name != name) continue;
        std::int64_t cost = kind.base_cost;
        for (std::int64_t i = 0; i < owned && cost != int64_max; ++i) cost = mul(cost, 2);
        return cost;
    }
    return std::nullopt;
}

outcome apply(const std::optional<state>& current, std::string_view type, const json& payload,
              std::int64_t now_ms) {
    const state unchanged = current.value_or(state{});
    if (type == "session") {
        if (!payload.is_null() && !payload.is_object()) {
            return refuse(unchanged, error_code::invalid_payload, "session: payload must be {}");
        }
        outcome out;
        out.next = current ? *current : fresh_state(now_ms);
        return out;
    }
    if (!current) {
        return refuse(unchanged, error_code::no_session,
                      "no session yet: send a \"session\" command first");
    }
    const json empty = json::object();
    const json& p = payload.is_null() ? empty : payload;
    if (!p.is_object()) {
        return refuse(*current, error_code::invalid_payload,
                      std::string(type) + ": payload must be a JSON object");
    }
    if (type == "cook") return cook(*current, p);
    if (type == "sell") return sell(*current, p);
    if (type == "upgrade_buy") return upgrade_buy(*current, p);
    if (type == "level_check") return check_level(*current);
    if (type == "level_up") return level_up(*current);
    if (type == "passive") return passive(*current, now_ms);
    if (type == "session_reset") return reset(*current, now_ms);
    return refuse(*current, error_code::invalid_payload,
                  "not a game command: " + std::string(type));
}

}  // namespace gatehouse_demo::game
