#include "gatehouse/jwt.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/clock.hpp"
#include "common/constant_time.hpp"
#include "gatehouse/errc.hpp"

namespace gatehouse {
namespace {

using json = nlohmann::json;

// Tokens travel in URL paths and headers; nothing legitimate comes near this, and the cap
// bounds the work (and the JSON nesting depth) an unauthenticated peer can ask for.
constexpr std::size_t max_token_bytes = std::size_t{8} * 1024;

constexpr std::size_t hs256_bytes = 32;
using digest = std::array<unsigned char, hs256_bytes>;

constexpr std::string_view standard_header = R"({"alg":"HS256","typ":"JWT"})";

constexpr char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int b64url_value(char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

std::string b64url_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() * 4 + 2) / 3);
    std::size_t i = 0;
    const auto byte = [&in](std::size_t k) -> unsigned {
        return static_cast<unsigned char>(in[k]);
    };
    for (; i + 3 <= in.size(); i += 3) {
        const unsigned v = (byte(i) << 16U) | (byte(i + 1) << 8U) | byte(i + 2);
        out += b64url_alphabet[(v >> 18U) & 63U];
        out += b64url_alphabet[(v >> 12U) & 63U];
        out += b64url_alphabet[(v >> 6U) & 63U];
        out += b64url_alphabet[v & 63U];
    }
    const std::size_t rest = in.size() - i;
    if (rest == 1) {
        const unsigned v = byte(i) << 16U;
        out += b64url_alphabet[(v >> 18U) & 63U];
        out += b64url_alphabet[(v >> 12U) & 63U];
    } else if (rest == 2) {
        const unsigned v = (byte(i) << 16U) | (byte(i + 1) << 8U);
        out += b64url_alphabet[(v >> 18U) & 63U];
        out += b64url_alphabet[(v >> 12U) & 63U];
        out += b64url_alphabet[(v >> 6U) & 63U];
    }
    return out;
}

// Strict RFC 7515 base64url: no padding, no whitespace, nothing outside the alphabet, and the
// unused low bits of the last character must be zero. The last rule makes the encoding
// canonical, so one signature has exactly one spelling and a token cannot be varied (to slip
// past a deny list keyed on the token text, say) while still verifying.
std::optional<std::string> b64url_decode(std::string_view in) {
    if (in.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(in.size() * 3 / 4);
    unsigned acc = 0;
    unsigned bits = 0;
    for (const char c : in) {
        const int v = b64url_value(c);
        if (v < 0) return std::nullopt;
        acc = (acc << 6U) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFFU);
        }
        acc &= (1U << bits) - 1U;
    }
    if (acc != 0) return std::nullopt;
    return out;
}

bool hmac_sha256(std::string_view key, std::string_view data, digest& out) noexcept {
    if (key.size() > static_cast<std::size_t>(INT_MAX)) return false;
    // HMAC with an empty key is well defined, but an empty view may hold a null pointer, and
    // how OpenSSL treats a null key has varied between versions; hand it a valid one.
    static constexpr unsigned char no_key = 0;
    const unsigned char* key_bytes =
        key.empty() ? &no_key : reinterpret_cast<const unsigned char*>(key.data());
    unsigned int len = 0;
    const unsigned char* r =
        HMAC(EVP_sha256(), key_bytes, static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
    return r != nullptr && len == out.size();
}

bool iequals_ascii(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto lower = [](char c) {
            return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
        };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

// JSON numbers that are integers and fit int64; 1.0, 1e9, "1" and 2^63 do not count.
std::optional<std::int64_t> int64_claim(const json& v) {
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            return std::nullopt;
        }
        return static_cast<std::int64_t>(u);
    }
    if (v.is_number_integer()) return v.get<std::int64_t>();
    return std::nullopt;
}

// `t` is later than `now` by more than `skew` seconds, without overflowing near the limits.
bool later_than(std::int64_t t, std::int64_t now, std::int64_t skew) noexcept {
    if (t <= now) return false;
    const auto ahead = static_cast<std::uint64_t>(t) - static_cast<std::uint64_t>(now);
    return ahead > static_cast<std::uint64_t>(skew);
}

// The header decides how the rest is read, so it is checked before anything else is used.
std::error_code check_header(std::string_view header_text) {
    const json header = json::parse(header_text.begin(), header_text.end(), nullptr, false);
    if (header.is_discarded() || !header.is_object()) return errc::invalid_token;
    // Only the exact string "HS256" is accepted (JOSE names are case-sensitive): this refuses
    // "none" and the RS256/HS256 key-confusion attack alike.
    const auto alg = header.find("alg");
    if (alg == header.end() || !alg->is_string() || alg->get_ref<const std::string&>() != "HS256") {
        return errc::token_algorithm_refused;
    }
    const auto typ = header.find("typ");
    if (typ != header.end()) {
        if (!typ->is_string() || !iequals_ascii(typ->get_ref<const std::string&>(), "JWT")) {
            return errc::invalid_token;
        }
    }
    // RFC 7515 4.1.11: extensions named critical must be understood, and we understand none.
    if (header.contains("crit")) return errc::invalid_token;
    return {};
}

std::error_code read_claims(std::string_view claims_text, std::int64_t now, std::int64_t skew,
                            jwt_claims& out) {
    // nlohmann keeps the last of duplicate member names, which RFC 7519 section 4 allows.
    const json claims = json::parse(claims_text.begin(), claims_text.end(), nullptr, false);
    if (claims.is_discarded() || !claims.is_object()) return errc::invalid_token;

    jwt_claims c;
    const auto sub = claims.find("sub");
    if (sub == claims.end() || !sub->is_string() || sub->get_ref<const std::string&>().empty()) {
        return errc::invalid_token;
    }
    c.sub = sub->get<std::string>();

    const auto iat = claims.find("iat");
    const auto exp = claims.find("exp");
    if (iat == claims.end() || exp == claims.end()) return errc::invalid_token;
    const auto iat_value = int64_claim(*iat);
    const auto exp_value = int64_claim(*exp);
    if (!iat_value || !exp_value) return errc::invalid_token;
    c.iat = *iat_value;
    c.exp = *exp_value;

    std::optional<std::int64_t> nbf_value;
    if (const auto nbf = claims.find("nbf"); nbf != claims.end()) {
        nbf_value = int64_claim(*nbf);
        if (!nbf_value) return errc::invalid_token;
    }

    if (const auto roles = claims.find("roles"); roles != claims.end()) {
        if (!roles->is_array()) return errc::invalid_token;
        c.roles.reserve(roles->size());
        for (const auto& role : *roles) {
            if (!role.is_string()) return errc::invalid_token;
            c.roles.push_back(role.get<std::string>());
        }
    }

    if (c.exp <= now) return errc::token_expired;
    if (later_than(c.iat, now, skew)) return errc::token_issued_in_future;
    // RFC 7519 4.1.5: a token is not to be accepted before `nbf`; it gets the same leeway as
    // `iat`, since the same drifting clock minted both.
    if (nbf_value && later_than(*nbf_value, now, skew)) return errc::token_issued_in_future;

    out = std::move(c);
    return {};
}

}  // namespace

std::error_code verify_jwt(std::string_view token, std::string_view secret, std::int64_t now_unix_s,
                           jwt_claims& out, const jwt_verify_options& options) {
    try {
        if (token.size() > max_token_bytes) return errc::invalid_token;
        const auto dot1 = token.find('.');
        if (dot1 == std::string_view::npos) return errc::invalid_token;
        const auto dot2 = token.find('.', dot1 + 1);
        if (dot2 == std::string_view::npos) return errc::invalid_token;
        if (token.find('.', dot2 + 1) != std::string_view::npos) return errc::invalid_token;

        const std::string_view signing_input = token.substr(0, dot2);
        const auto header_text = b64url_decode(token.substr(0, dot1));
        const auto claims_text = b64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
        const auto signature = b64url_decode(token.substr(dot2 + 1));
        if (!header_text || !claims_text || !signature) return errc::invalid_token;

        if (const auto ec = check_header(*header_text)) return ec;

        // An empty key is no key: anyone could mint tokens for it, so nothing verifies.
        if (secret.empty()) return errc::token_bad_signature;
        digest expected{};
        if (!hmac_sha256(secret, signing_input, expected)) return errc::token_bad_signature;
        // The length is public (it is fixed by the algorithm); the bytes are compared in
        // constant time so that timing reveals nothing about how much of a forgery matched.
        if (!detail::constant_time_equal(
                *signature, std::string_view(reinterpret_cast<const char*>(expected.data()),
                                             expected.size()))) {
            return errc::token_bad_signature;
        }

        const std::int64_t skew = std::max<std::int64_t>(0, options.max_clock_skew.count());
        return read_claims(*claims_text, now_unix_s, skew, out);
    } catch (const json::exception&) {
        // Not expected (every access above is type-checked first); but a token must never
        // turn into an exception for the caller.
        return errc::invalid_token;
    }
}

std::string sign_jwt(const jwt_claims& claims, std::string_view secret) {
    json body = json::object();
    body["sub"] = claims.sub;
    body["iat"] = claims.iat;
    body["exp"] = claims.exp;
    if (!claims.roles.empty()) body["roles"] = claims.roles;

    std::string body_text;
    try {
        body_text = body.dump();
    } catch (const json::type_error&) {
        // A string that is not valid UTF-8 has no JSON spelling; replacing bytes would sign a
        // different player id than the one asked for.
        return {};
    }

    std::string token = b64url_encode(standard_header);
    token += '.';
    token += b64url_encode(body_text);
    digest mac{};
    if (!hmac_sha256(secret, token, mac)) return {};
    token += '.';
    token += b64url_encode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
    return token;
}

std::int64_t unix_now_seconds() noexcept { return detail::unix_now_seconds(); }

}  // namespace gatehouse
