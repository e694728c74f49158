#pragma once
// Who a request really comes from behind trusted proxies (docs/protocol.md section 6.2): the peer
// address, unless the peer is a trusted proxy, in which case the rightmost X-Forwarded-For
// entry that is not itself trusted (the leftmost when all are).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace gatehouse::detail {

class trusted_proxies {
public:
    // `cidrs`: `ADDRESS/PREFIX` or a bare address (a /32 or /128), IPv4 or IPv6. Fails with
    // the offending entry in `bad` when one does not parse.
    std::error_code parse(const std::vector<std::string>& cidrs, std::string& bad);

    bool empty() const noexcept { return networks_.empty(); }

    // The client address of a request that came from `peer` carrying these X-Forwarded-For
    // field values (in the order received; each may be a comma-separated list).
    std::string client_address(const std::string& peer,
                               const std::vector<std::string_view>& forwarded_for) const;

private:
    struct network {
        std::array<std::uint8_t, 16> bytes{};  // IPv4 as IPv4-mapped IPv6
        unsigned prefix = 0;                   // in bits of the 128
    };
    bool trusted(std::string_view address) const noexcept;
    static bool to_bytes(std::string_view text, std::array<std::uint8_t, 16>& out, bool& v4);

    std::vector<network> networks_;
};

}  // namespace gatehouse::detail
