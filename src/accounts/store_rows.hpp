#pragma once
// What the built-in user stores (SQLite, PostgreSQL) share: the error of a failed store, new
// player ids, and a refresh token as rotation and logout read it.

#include <cstdint>
#include <string>
#include <system_error>

#include "gatehouse/errc.hpp"

namespace gatehouse::detail {

// The storage itself failed (the details are the store's to log, without secrets).
inline std::error_code store_unavailable() { return make_error_code(errc::store_unavailable); }

// 96 random bits from libsodium's CSPRNG as `p_` and 24 hex digits: unguessable and, at any
// realistic number of accounts, collision-free (a collision is still detected and retried by
// the stores). The prefix makes ids recognisable in logs.
std::string new_player_id();

// A refresh token as rotation and logout see it.
struct token_state {
    std::string family_id;
    std::string player_id;
    std::int64_t expires_at_ms = 0;
    bool used = false;
    bool revoked = false;
};

}  // namespace gatehouse::detail
