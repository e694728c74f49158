#pragma once
// HS256 access tokens minted by the generator itself (docs/protocol.md section 2: any token that
// verifies is accepted, so a trusted party holding the secret may mint them).

#include <string>

namespace gatehouse_load {

/// A compact HS256 JWT with claims {"sub", "iat": now, "exp": now + ttl_s}.
std::string mint_hs256(const std::string& secret, const std::string& sub, long ttl_s);

}  // namespace gatehouse_load
