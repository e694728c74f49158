#include "gatehouse/credentials.hpp"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstdlib>

namespace gatehouse {
namespace {

// libsodium must be initialised before use: sodium_init picks the CPU-specific Argon2 and
// SHA-256 code and seeds the randomness source. The function-local static makes that happen
// once however many worker threads race to the first hash. sodium_init only fails when it
// cannot take its own internal lock; libsodium itself aborts when it has no randomness
// source, and a process that cannot trust its CSPRNG must not mint tokens, so we do the same
// rather than hand out an error that make_refresh_token() has no way to report.
void ensure_sodium() noexcept {
    static const bool ready = [] {
        if (sodium_init() < 0) std::abort();
        return true;
    }();
    (void)ready;
}

// The limits of the algorithm we ask for explicitly (crypto_pwhash_str_alg with
// ALG_ARGON2ID13), rather than crypto_pwhash_*, whose meaning follows libsodium's default.
bool cost_in_limits(const password_hash_cost& cost) noexcept {
    return cost.passes >= crypto_pwhash_argon2id_OPSLIMIT_MIN &&
           cost.passes <= crypto_pwhash_argon2id_OPSLIMIT_MAX &&
           cost.memory_bytes >= crypto_pwhash_argon2id_MEMLIMIT_MIN &&
           cost.memory_bytes <= crypto_pwhash_argon2id_MEMLIMIT_MAX;
}

// An empty string_view may have a null data(); libsodium reads `len` bytes from the pointer,
// so any valid pointer does for zero bytes.
const char* bytes_of(std::string_view s) noexcept { return s.empty() ? "" : s.data(); }

}  // namespace

bool valid_password_hash_cost(const password_hash_cost& cost) noexcept {
    return cost_in_limits(cost);
}

std::error_code hash_password(std::string_view password, std::string& out,
                              const password_hash_cost& cost) {
    if (!cost_in_limits(cost) || password.size() > crypto_pwhash_argon2id_PASSWD_MAX) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    ensure_sodium();
    std::array<char, crypto_pwhash_STRBYTES> encoded{};
    // The only failure left once the arguments are in range is the memory allocation.
    if (crypto_pwhash_str_alg(encoded.data(), bytes_of(password), password.size(), cost.passes,
                              cost.memory_bytes, crypto_pwhash_ALG_ARGON2ID13) != 0) {
        return std::make_error_code(std::errc::not_enough_memory);
    }
    out.assign(encoded.data());
    return {};
}

bool verify_password(std::string_view encoded, std::string_view password) noexcept {
    // libsodium wants a NUL-terminated string of fewer than crypto_pwhash_STRBYTES bytes:
    // anything longer, or with a NUL inside, was not written by hash_password. Copying into a
    // stack buffer keeps this noexcept (no allocation).
    std::array<char, crypto_pwhash_STRBYTES> buffer{};
    if (encoded.empty() || encoded.size() >= buffer.size() ||
        encoded.find('\0') != std::string_view::npos ||
        password.size() > crypto_pwhash_argon2id_PASSWD_MAX) {
        return false;
    }
    std::copy(encoded.begin(), encoded.end(), buffer.begin());
    ensure_sodium();
    return crypto_pwhash_str_verify(buffer.data(), bytes_of(password), password.size()) == 0;
}

std::error_code make_decoy_password_hash(std::string& out, const password_hash_cost& cost) {
    ensure_sodium();
    // A random password, wiped at once: nobody, this process included, knows it.
    std::array<char, 32> secret{};
    randombytes_buf(secret.data(), secret.size());
    const auto ec = hash_password(std::string_view(secret.data(), secret.size()), out, cost);
    sodium_memzero(secret.data(), secret.size());
    return ec;
}

std::string make_refresh_token() {
    ensure_sodium();
    constexpr int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
    std::array<unsigned char, 32> raw{};
    std::array<char, sodium_base64_ENCODED_LEN(32, variant)> text{};
    randombytes_buf(raw.data(), raw.size());
    sodium_bin2base64(text.data(), text.size(), raw.data(), raw.size(), variant);
    std::string token(text.data());
    // The caller owns the only copy of the secret from here on.
    sodium_memzero(raw.data(), raw.size());
    sodium_memzero(text.data(), text.size());
    return token;
}

std::string hash_refresh_token(std::string_view token) {
    ensure_sodium();
    std::array<unsigned char, crypto_hash_sha256_BYTES> digest{};
    std::array<char, crypto_hash_sha256_BYTES * 2 + 1> hex{};
    crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(bytes_of(token)),
                       token.size());
    // sodium_bin2hex writes lowercase digits and a terminating NUL.
    sodium_bin2hex(hex.data(), hex.size(), digest.data(), digest.size());
    return std::string(hex.data(), crypto_hash_sha256_BYTES * 2);
}

}  // namespace gatehouse
