#include "gateway/gateway_id.hpp"

#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "gatehouse/gateway.hpp"

namespace gatehouse {

// Host name, process id and a random suffix: unique across instances and restarts, and
// short enough that connection ids and assigned correlation ids stay within 128 characters.
std::string make_gateway_id() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    std::string id;
    for (const char* p = host; *p != '\0' && id.size() < 32; ++p) {
        id += detail::is_gateway_id_char(*p) ? *p : '-';
    }
    if (id.empty()) id = "gatehouse";
    unsigned char random[4] = {};
    RAND_bytes(random, sizeof random);
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, "-%ld-%02x%02x%02x%02x", static_cast<long>(getpid()),
                  random[0], random[1], random[2], random[3]);
    return id + suffix;
}

bool valid_gateway_id(std::string_view id) noexcept { return detail::is_valid_gateway_id(id); }

}  // namespace gatehouse

namespace gatehouse::detail {

bool is_gateway_id_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

bool is_valid_gateway_id(std::string_view id) noexcept {
    return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), is_gateway_id_char);
}

}  // namespace gatehouse::detail
