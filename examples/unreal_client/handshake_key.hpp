#pragma once
// The two values of the opening handshake (RFC 6455 section 4): the client's random
// Sec-WebSocket-Key and the Sec-WebSocket-Accept the server must answer for it. SHA-1 and
// base64 come from OpenSSL's libcrypto here; in Unreal, FSHA1 and FBase64 do the same.

#include <array>
#include <string>
#include <string_view>

namespace gh_client {

/// A fresh Sec-WebSocket-Key: 16 random bytes, base64.
std::string make_websocket_key();

/// base64(SHA-1(key + the RFC's GUID)): what the server's Sec-WebSocket-Accept must be.
std::string expected_accept(std::string_view key);

/// Four unpredictable bytes to mask a frame with (RFC 6455 section 5.3).
std::array<unsigned char, 4> make_mask();

}  // namespace gh_client
