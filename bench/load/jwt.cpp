#include "jwt.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <ctime>
#include <string_view>

namespace gatehouse_load {
namespace {

std::string b64url(std::string_view in) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    const auto byte = [&](std::size_t k) {
        return static_cast<unsigned>(static_cast<unsigned char>(in[k]));
    };
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (in.size() - i == 1) {
        const unsigned v = byte(i) << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
    } else if (in.size() - i == 2) {
        const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
    }
    return out;
}

}  // namespace

std::string mint_hs256(const std::string& secret, const std::string& sub, long ttl_s) {
    const long now = static_cast<long>(std::time(nullptr));
    // `sub` is the generator's own "bench-pN": no character in it needs JSON escaping.
    const std::string claims = "{\"sub\":\"" + sub + "\",\"iat\":" + std::to_string(now) +
                               ",\"exp\":" + std::to_string(now + ttl_s) + "}";
    const std::string signing_input =
        b64url(R"({"alg":"HS256","typ":"JWT"})") + "." + b64url(claims);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
         &mac_len);
    return signing_input + "." +
           b64url(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
}

}  // namespace gatehouse_load
