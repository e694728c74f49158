#include "transport/client_address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <system_error>

#include "gatehouse/gateway.hpp"
#include "http/text.hpp"

namespace gatehouse::detail {
namespace {

// An X-Forwarded-For entry may be written `[v6]` (some proxies add the brackets).
std::string_view unbracket(std::string_view s) noexcept {
    if (s.size() >= 2 && s.front() == '[' && s.back() == ']') return s.substr(1, s.size() - 2);
    return s;
}

}  // namespace

bool trusted_proxies::to_bytes(std::string_view text, std::array<std::uint8_t, 16>& out, bool& v4) {
    const std::string s(text);
    in_addr a4{};
    in6_addr a6{};
    out.fill(0);
    if (inet_pton(AF_INET, s.c_str(), &a4) == 1) {
        v4 = true;
        out[10] = 0xff;
        out[11] = 0xff;
        const auto* b = reinterpret_cast<const std::uint8_t*>(&a4.s_addr);
        for (std::size_t i = 0; i < 4; ++i) out[12 + i] = b[i];
        return true;
    }
    if (inet_pton(AF_INET6, s.c_str(), &a6) == 1) {
        v4 = false;
        for (std::size_t i = 0; i < 16; ++i) out[i] = a6.s6_addr[i];
        return true;
    }
    return false;
}

std::error_code trusted_proxies::parse(const std::vector<std::string>& cidrs, std::string& bad) {
    networks_.clear();
    for (const auto& entry : cidrs) {
        const std::string_view text = trim(entry);
        if (text.empty()) continue;
        const auto slash = text.find('/');
        network n;
        bool v4 = false;
        if (!to_bytes(text.substr(0, slash), n.bytes, v4)) {
            bad = entry;
            return std::make_error_code(std::errc::invalid_argument);
        }
        const unsigned width = v4 ? 32 : 128;
        unsigned prefix = width;
        if (slash != std::string_view::npos) {
            const auto digits = text.substr(slash + 1);
            const auto [end, ec] =
                std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
            if (ec != std::errc{} || end != digits.data() + digits.size() || digits.empty() ||
                prefix > width) {
                bad = entry;
                return std::make_error_code(std::errc::invalid_argument);
            }
        }
        n.prefix = prefix + (v4 ? 96 : 0);
        networks_.push_back(n);
    }
    return {};
}

bool trusted_proxies::trusted(std::string_view address) const noexcept {
    std::array<std::uint8_t, 16> bytes{};
    bool v4 = false;
    if (!to_bytes(unbracket(address), bytes, v4)) return false;
    for (const auto& n : networks_) {
        unsigned bits = n.prefix;
        bool match = true;
        for (std::size_t i = 0; i < 16 && bits > 0 && match; ++i) {
            const unsigned take = bits >= 8 ? 8 : bits;
            const auto mask = static_cast<std::uint8_t>(0xff << (8 - take));
            match = (bytes[i] & mask) == (n.bytes[i] & mask);
            bits -= take;
        }
        if (match) return true;
    }
    return false;
}

std::string trusted_proxies::client_address(
    const std::string& peer, const std::vector<std::string_view>& forwarded_for) const {
    if (networks_.empty() || !trusted(peer)) return peer;
    // Every entry, in order: later proxies append on the right.
    std::vector<std::string_view> hops;
    for (auto value : forwarded_for) {
        while (!value.empty()) {
            const auto comma = value.find(',');
            const auto entry = trim(value.substr(0, comma));
            if (!entry.empty()) hops.push_back(unbracket(entry));
            if (comma == std::string_view::npos) break;
            value.remove_prefix(comma + 1);
        }
    }
    std::array<std::uint8_t, 16> scratch{};
    bool v4 = false;
    for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
        if (trusted(*it)) continue;
        // The first untrusted hop from the right was written by a trusted proxy: that is the
        // client. An entry that is not an address at all means a proxy that does not write
        // this header as expected; the last trusted hop is then the best known address.
        if (to_bytes(*it, scratch, v4)) return std::string(*it);
        return it == hops.rbegin() ? peer : std::string(*(it - 1));
    }
    // Every hop is trusted: the leftmost is as far as the chain can be followed.
    return hops.empty() ? peer : std::string(hops.front());
}

}  // namespace gatehouse::detail

namespace gatehouse {

std::error_code check_trusted_proxy(std::string_view entry) {
    detail::trusted_proxies proxies;
    std::string bad;
    return proxies.parse({std::string(entry)}, bad);
}

}  // namespace gatehouse
