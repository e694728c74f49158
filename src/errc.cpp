#include "gatehouse/errc.hpp"

#include <string>

namespace gatehouse {
namespace {

class gatehouse_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "gatehouse"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::unknown_codec: return "no codec is registered under that name";
            case errc::codec_already_registered: return "a codec with that name is registered";
            case errc::invalid_codec_name: return "codec names are 1-32 characters of [a-z0-9_.-]";
            case errc::payload_not_representable:
                return "the payload cannot be carried in this wire format";
            case errc::invalid_token: return "the token is not a well-formed JWT";
            case errc::token_algorithm_refused: return "the token's algorithm is not HS256";
            case errc::token_bad_signature: return "the token's signature does not verify";
            case errc::token_expired: return "the token has expired";
            case errc::token_issued_in_future: return "the token is issued in the future";
            case errc::unknown_bot_key: return "no bot key matches";
            case errc::bus_unavailable: return "the command bus is unavailable";
            case errc::rate_limited: return "over the command rate limit";
            case errc::invalid_update: return "the update message is malformed";
            case errc::shutting_down: return "the gateway is shutting down";
            case errc::invalid_listen_address: return "expected HOST:PORT";
            case errc::tls_setup_failed: return "TLS certificate or key could not be loaded";
            case errc::username_taken: return "the username is taken";
            case errc::email_taken: return "the email is taken";
            case errc::user_not_found: return "no such user";
            case errc::invalid_refresh_token: return "the refresh token is not valid";
            case errc::refresh_token_reused:
                return "the refresh token was already used; its family is revoked";
            case errc::store_unavailable: return "the user store failed";
            case errc::unsupported_store: return "this user store URL is not supported";
        }
        return "unknown gatehouse error";
    }
};

}  // namespace

const std::error_category& gatehouse_category() noexcept {
    static const gatehouse_category_impl instance;
    return instance;
}

std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), gatehouse_category()};
}

}  // namespace gatehouse
