#include "accounts/postgres_user_store.hpp"

#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "accounts/postgres_migrations.hpp"
#include "accounts/postgres_pool.hpp"
#include "accounts/store_rows.hpp"
#include "client/internal.hpp"  // is_valid_utf8
#include "common/clock.hpp"
#include "gatehouse/errc.hpp"

namespace gatehouse::detail {
namespace {

using postgres::connection_pool;
using postgres::conninfo;
using postgres::outcome;
using postgres::transaction;
using lease = connection_pool::lease;

constexpr std::string_view user_columns =
    "player_id, username, email, password_hash, display_name, preferences, created_at_ms";

// The SQLSTATEs the store tells apart; everything else is store_unavailable.
constexpr std::string_view unique_violation = "23505";
constexpr std::string_view foreign_key_violation = "23503";

// PostgreSQL text holds neither NUL nor invalid UTF-8 (the connection's client_encoding is
// UTF8). Such a value cannot name anything stored, and is refused as an argument when written,
// instead of turning into a server error and a 503.
bool storable(std::string_view s) noexcept {
    return s.find('\0') == std::string_view::npos && client::detail::is_valid_utf8(s);
}

// Calls are short statement sequences on a pooled connection. Every check-then-write
// sequence on refresh tokens runs in a transaction that first locks the player's row (SELECT
// ... FOR UPDATE): rotation, logout, password change and revoking a player are then serialised
// per player across every instance, so a token rotated while its family is being revoked is
// revoked too, and exactly one of several concurrent rotations of one token wins. Accounts are
// created without a transaction: the unique indexes decide races, and a conflict is looked up
// again to say which name was taken.
class postgres_user_store final : public user_store {
public:
    postgres_user_store(conninfo info, const postgres_options& options)
        : pool_(std::move(info), options) {}

    connection_pool& pool() noexcept { return pool_; }

    std::error_code create_user(user_record& user) override {
        if (!storable(user.username) || !storable(user.email) || !storable(user.password_hash) ||
            !storable(user.display_name) || !storable(user.preferences) ||
            !storable(user.player_id)) {
            return std::make_error_code(std::errc::invalid_argument);
        }
        lease l = pool_.acquire();
        if (!l) return store_unavailable();
        const bool generated = user.player_id.empty();
        const std::int64_t created = user.created_at_ms != 0 ? user.created_at_ms : unix_now_ms();
        const std::string created_text = std::to_string(created);
        // Each round either returns or found a conflict that vanished (the other insert rolled
        // back) or a generated id that collided: both need only another try.
        for (int attempt = 0; attempt < 4; ++attempt) {
            if (auto ec = taken(l, user.username, user.email)) return ec;
            const std::string id = generated ? new_player_id() : user.player_id;
            if (!generated) {
                const auto o = l.run("SELECT 1 FROM users WHERE player_id = $1", {id});
                if (!o.ok()) return store_unavailable();
                if (o.rows() > 0) return std::make_error_code(std::errc::invalid_argument);
            }
            const auto o = l.run(
                "INSERT INTO users (player_id, username, email, password_hash, display_name,"
                " preferences, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                {id, user.username, user.email, user.password_hash, user.display_name,
                 user.preferences, created_text});
            if (o.ok()) {
                user.player_id = id;
                user.created_at_ms = created;
                return {};
            }
            if (o.sqlstate() != unique_violation) return store_unavailable();
            if (o.constraint() == "users_pkey") {
                if (!generated) {
                    if (auto ec = taken(l, user.username, user.email)) return ec;
                    return std::make_error_code(std::errc::invalid_argument);
                }
                continue;
            }
            // A concurrent registration of the same name won: the next round's check says
            // which name (username first).
        }
        return store_unavailable();
    }

    std::error_code find_user_by_login(std::string_view login, user_record& out) override {
        if (!storable(login)) return make_error_code(errc::user_not_found);
        lease l = pool_.acquire();
        if (!l) return store_unavailable();
        // One round trip; a username match sorts first (true > false).
        return read_user(l.run(std::string("SELECT ") + std::string(user_columns) +
                                   " FROM users"
                                   " WHERE lower(username COLLATE \"C\") = lower($1 COLLATE \"C\")"
                                   " OR lower(email COLLATE \"C\") = lower($1 COLLATE \"C\")"
                                   " ORDER BY lower(username COLLATE \"C\") ="
                                   " lower($1 COLLATE \"C\") DESC LIMIT 1",
                               {login}),
                         out);
    }

    std::error_code find_user(std::string_view player_id, user_record& out) override {
        if (!storable(player_id)) return make_error_code(errc::user_not_found);
        lease l = pool_.acquire();
        if (!l) return store_unavailable();
        return read_user(l.run(std::string("SELECT ") + std::string(user_columns) +
                                   " FROM users WHERE player_id = $1",
                               {player_id}),
                         out);
    }

    std::error_code update_settings(std::string_view player_id, std::string_view display_name,
                                    std::string_view preferences) override {
        if (!storable(player_id)) return make_error_code(errc::user_not_found);
        if (!storable(display_name) || !storable(preferences)) {
            return std::make_error_code(std::errc::invalid_argument);
        }
        lease l = pool_.acquire();
        if (!l) return store_unavailable();
        const auto o =
            l.run("UPDATE users SET display_name = $2, preferences = $3 WHERE player_id = $1",
                  {player_id, display_name, preferences});
        if (!o.ok()) return store_unavailable();
        if (o.affected() == 0) return make_error_code(errc::user_not_found);
        return {};
    }

    std::error_code update_password(std::string_view player_id,
                                    std::string_view password_hash) override {
        if (!storable(player_id)) return make_error_code(errc::user_not_found);
        if (!storable(password_hash)) return std::make_error_code(std::errc::invalid_argument);
        lease l = pool_.acquire();
        if (!l) return store_unavailable();
        transaction tx(l);
        if (!tx.active()) return store_unavailable();
        // The UPDATE locks the player's row, which serialises this with rotations.
        const auto o = l.run("UPDATE users SET password_hash = $2 WHERE player_id = $1",
                             {player_id, password_hash});
        if (!o.ok()) return store_unavailable();
        if (o.affected() == 0) return make_error_code(errc::user_not_found);
        if (!l.run("UPDATE refresh_tokens SET revoked = TRUE WHERE player_id = $1 AND NOT revoked",
                   {player_id})
                 .ok() ||
            !tx.commit()) {
            return store_unavailable();
        }
        return {};
    }

    std::error_code add_refresh_token(const refresh_token_record& token) override {
        if (!storable(token.player_id)) return make_error_code(errc::user_not_found);
        if (!storable(token.token_hash) || !storable(token.family_id)) {
            return std::make_error_code(std::errc::invalid_argument);
        }
        lease l = pool_.acquire();
        if (!l) return store_unavailable();
        return insert_token(l, token.token_hash, token.family_id, token.player_id,
                            token.expires_at_ms, unix_now_ms());
    }

    std::error_code rotate_refresh_token(std::string_view presented_hash, std::int64_t now_ms,
                                         refresh_token_record& next) override {
        if (!storable(presented_hash)) return make_error_code(errc::invalid_refresh_token);
        if (!storable(next.token_hash)) return std::make_error_code(std::errc::invalid_argument);
        lease l = pool_.acquire();
        if (!l) return store_unavailable();
        transaction tx(l);
        if (!tx.active()) return store_unavailable();
        token_state old;
        if (auto ec = lock_and_find_token(l, presented_hash, old)) return ec;
        // The same decisions, in the same order, as the SQLite store (see there).
        if (old.revoked) return make_error_code(errc::invalid_refresh_token);
        if (old.used) {
            if (!l.run("UPDATE refresh_tokens SET revoked = TRUE"
                       " WHERE family_id = $1 AND NOT revoked",
                       {old.family_id})
                     .ok() ||
                !tx.commit()) {
                return store_unavailable();
            }
            next.family_id = std::move(old.family_id);
            next.player_id = std::move(old.player_id);
            return make_error_code(errc::refresh_token_reused);
        }
        if (now_ms >= old.expires_at_ms) return make_error_code(errc::invalid_refresh_token);
        if (!l.run("UPDATE refresh_tokens SET used_at_ms = $2 WHERE token_hash = $1",
                   {presented_hash, std::to_string(now_ms)})
                 .ok()) {
            return store_unavailable();
        }
        if (auto ec = insert_token(l, next.token_hash, old.family_id, old.player_id,
                                   next.expires_at_ms, now_ms)) {
            return ec;
        }
        if (!tx.commit()) return store_unavailable();
        next.family_id = std::move(old.family_id);
        next.player_id = std::move(old.player_id);
        return {};
    }

    std::error_code revoke_refresh_family(std::string_view presented_hash,
                                          std::int64_t now_ms) override {
        if (!storable(presented_hash)) return make_error_code(errc::invalid_refresh_token);
        lease l = pool_.acquire();
        if (!l) return store_unavailable();
        transaction tx(l);
        if (!tx.active()) return store_unavailable();
        token_state t;
        if (auto ec = lock_and_find_token(l, presented_hash, t)) return ec;
        if (t.revoked || t.used || now_ms >= t.expires_at_ms) {
            return make_error_code(errc::invalid_refresh_token);
        }
        if (!l.run("UPDATE refresh_tokens SET revoked = TRUE WHERE family_id = $1 AND NOT revoked",
                   {t.family_id})
                 .ok() ||
            !tx.commit()) {
            return store_unavailable();
        }
        return {};
    }

    std::error_code revoke_player_tokens(std::string_view player_id) override {
        if (!storable(player_id)) return {};
        lease l = pool_.acquire();
        if (!l) return store_unavailable();
        transaction tx(l);
        if (!tx.active() ||
            !l.run("SELECT 1 FROM users WHERE player_id = $1 FOR UPDATE", {player_id}).ok() ||
            !l.run("UPDATE refresh_tokens SET revoked = TRUE WHERE player_id = $1 AND NOT revoked",
                   {player_id})
                 .ok() ||
            !tx.commit()) {
            return store_unavailable();
        }
        return {};
    }

    std::error_code prune_refresh_tokens(std::int64_t now_ms, std::size_t& removed) override {
        lease l = pool_.acquire();
        if (!l) return store_unavailable();
        // A family is dead when none of its tokens can ever be accepted again: all expired,
        // or all revoked. Its used tokens go with it: replaying one could only revoke tokens
        // that are dead already. Bounded per call, so a large backlog costs several calls
        // rather than one long one.
        const auto o = l.run(
            "DELETE FROM refresh_tokens WHERE family_id IN ("
            " SELECT family_id FROM refresh_tokens GROUP BY family_id"
            " HAVING max(expires_at_ms) <= $1 OR bool_and(revoked) LIMIT 10000)",
            {std::to_string(now_ms)});
        if (!o.ok()) return store_unavailable();
        removed = static_cast<std::size_t>(o.affected());
        return {};
    }

    std::error_code ping() override {
        lease l = pool_.acquire();
        if (!l) return store_unavailable();
        return l.run("SELECT 1").ok() ? std::error_code{} : store_unavailable();
    }

    std::error_code schema_history(std::vector<sqlite_schema_step>& out) {
        lease l = pool_.acquire();
        if (!l) return store_unavailable();
        const auto o =
            l.run("SELECT version, applied_at_ms FROM schema_migrations ORDER BY version");
        if (!o.ok()) return store_unavailable();
        std::vector<sqlite_schema_step> steps;
        steps.reserve(static_cast<std::size_t>(o.rows()));
        for (int row = 0; row < o.rows(); ++row) {
            steps.push_back({static_cast<int>(o.int64(row, 0)), o.int64(row, 1)});
        }
        out = std::move(steps);
        return {};
    }

private:
    static std::error_code read_user(const outcome& o, user_record& out) {
        if (!o.ok()) return store_unavailable();
        if (o.rows() == 0) return make_error_code(errc::user_not_found);
        user_record u;
        u.player_id = o.text(0, 0);
        u.username = o.text(0, 1);
        u.email = o.text(0, 2);
        u.password_hash = o.text(0, 3);
        u.display_name = o.text(0, 4);
        u.preferences = o.text(0, 5);
        u.created_at_ms = o.int64(0, 6);
        out = std::move(u);
        return {};
    }

    // username_taken / email_taken (username first), empty when both are free.
    static std::error_code taken(lease& l, std::string_view username, std::string_view email) {
        auto o = l.run(
            "SELECT 1 FROM users WHERE lower(username COLLATE \"C\") = lower($1 COLLATE \"C\")",
            {username});
        if (!o.ok()) return store_unavailable();
        if (o.rows() > 0) return make_error_code(errc::username_taken);
        o = l.run("SELECT 1 FROM users WHERE lower(email COLLATE \"C\") = lower($1 COLLATE \"C\")",
                  {email});
        if (!o.ok()) return store_unavailable();
        if (o.rows() > 0) return make_error_code(errc::email_taken);
        return {};
    }

    // Inside a transaction: locks the row of the token's player, then reads the token as it
    // is once every earlier transaction on that player has committed (READ COMMITTED takes a
    // new snapshot per statement).
    static std::error_code lock_and_find_token(lease& l, std::string_view hash, token_state& out) {
        auto o = l.run(
            "SELECT u.player_id FROM refresh_tokens t JOIN users u ON u.player_id = t.player_id"
            " WHERE t.token_hash = $1 FOR UPDATE OF u",
            {hash});
        if (!o.ok()) return store_unavailable();
        if (o.rows() == 0) return make_error_code(errc::invalid_refresh_token);
        o = l.run(
            "SELECT family_id, player_id, expires_at_ms, used_at_ms IS NOT NULL, revoked"
            " FROM refresh_tokens WHERE token_hash = $1",
            {hash});
        if (!o.ok()) return store_unavailable();
        // Pruned in between.
        if (o.rows() == 0) return make_error_code(errc::invalid_refresh_token);
        out.family_id = o.text(0, 0);
        out.player_id = o.text(0, 1);
        out.expires_at_ms = o.int64(0, 2);
        out.used = o.boolean(0, 3);
        out.revoked = o.boolean(0, 4);
        return {};
    }

    static std::error_code insert_token(lease& l, std::string_view hash, std::string_view family,
                                        std::string_view player, std::int64_t expires_at_ms,
                                        std::int64_t created_at_ms) {
        const auto o = l.run(
            "INSERT INTO refresh_tokens (token_hash, family_id, player_id, expires_at_ms,"
            " used_at_ms, revoked, created_at_ms) VALUES ($1, $2, $3, $4, NULL, FALSE, $5)",
            {hash, family, player, std::to_string(expires_at_ms), std::to_string(created_at_ms)});
        if (o.ok()) return {};
        // As in the SQLite store: no such account, or a duplicate hash (a caller bug).
        if (o.sqlstate() == foreign_key_violation) return make_error_code(errc::user_not_found);
        if (o.sqlstate() == unique_violation) {
            return std::make_error_code(std::errc::invalid_argument);
        }
        return store_unavailable();
    }

    connection_pool pool_;
};

}  // namespace

std::error_code open_postgres_user_store(std::string_view url,
                                         const std::vector<std::string_view>& migrations,
                                         const postgres_options& options,
                                         std::unique_ptr<user_store>& out, const log_sink& log) {
    postgres_options effective = options;
    conninfo info;
    if (auto why = postgres::parse_url(url, effective, info); !why.empty()) {
        throw std::invalid_argument("postgresql: " + why);
    }
    const auto fail = [&log](const std::string& why) {
        if (log) log(log_level::error, "postgresql: " + why);
        return make_error_code(errc::store_unavailable);
    };
    if (sodium_init() < 0) return fail("libsodium could not be initialised");
    const std::string shown = info.shown;
    auto store = std::make_unique<postgres_user_store>(std::move(info), effective);
    {
        std::string why;
        lease l = store->pool().acquire(&why);
        if (!l) return fail(why);
        if (auto step = postgres::migrate(l, migrations, effective); !step.empty()) {
            return fail(shown + ": " + step);
        }
    }
    out = std::move(store);
    return {};
}

std::error_code postgres_schema_history(user_store& store, std::vector<sqlite_schema_step>& out) {
    auto* ours = dynamic_cast<postgres_user_store*>(&store);
    if (ours == nullptr) return std::make_error_code(std::errc::invalid_argument);
    return ours->schema_history(out);
}

}  // namespace gatehouse::detail
