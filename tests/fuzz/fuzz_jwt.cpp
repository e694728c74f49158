// Fuzzes verify_jwt(), which reads every access token presented at the WebSocket upgrade.
// Beyond "does not crash": a token accepted with the fuzzing key has sane claims and signs
// back into a token that verifies to the same claims; with any other key nothing verifies.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "gatehouse/jwt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    constexpr std::string_view key = "fuzz-secret";
    constexpr std::int64_t now = 1700000000;
    const std::string_view token(reinterpret_cast<const char*>(data), size);

    gatehouse::jwt_claims claims;
    const auto ec = gatehouse::verify_jwt(token, key, now, claims);
    gatehouse::jwt_claims other;
    fuzz::require(static_cast<bool>(gatehouse::verify_jwt(token, "another-key", now, other)),
                  "no token verifies with two keys");
    if (ec) return 0;

    fuzz::require(!claims.sub.empty(), "sub is present");
    fuzz::require(claims.exp > now, "exp is in the future");
    const std::string resigned = gatehouse::sign_jwt(claims, key);
    gatehouse::jwt_claims again;
    fuzz::require(!gatehouse::verify_jwt(resigned, key, now, again), "re-signed token verifies");
    fuzz::require(again.sub == claims.sub && again.iat == claims.iat && again.exp == claims.exp &&
                      again.roles == claims.roles,
                  "re-signed token keeps its claims");
    return 0;
}
