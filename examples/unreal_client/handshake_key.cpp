#include "handshake_key.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>

namespace gh_client {

namespace {

std::string base64(const unsigned char* data, int size) {
    std::string out(static_cast<std::size_t>(4 * ((size + 2) / 3)) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, size);
    out.resize(static_cast<std::size_t>(n));
    return out;
}

void random_bytes(unsigned char* out, int size) {
    // Without randomness the masking the RFC asks for means nothing: stop rather than fake it.
    if (RAND_bytes(out, size) != 1) std::abort();
}

}  // namespace

std::string make_websocket_key() {
    unsigned char nonce[16];
    random_bytes(nonce, sizeof nonce);
    return base64(nonce, sizeof nonce);
}

std::string expected_accept(std::string_view key) {
    const std::string input = std::string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_Digest(input.data(), input.size(), digest, &size, EVP_sha1(), nullptr) != 1) return {};
    return base64(digest, static_cast<int>(size));
}

std::array<unsigned char, 4> make_mask() {
    std::array<unsigned char, 4> mask{};
    random_bytes(mask.data(), static_cast<int>(mask.size()));
    return mask;
}

}  // namespace gh_client
