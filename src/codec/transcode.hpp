#pragma once
// Payload conversion between JSON text and MessagePack, for encoding an envelope into a
// wire format other than the one its payload arrived in (a JSON update sent to a
// MessagePack client). Runs once per update per codec in use, never per connection.

#include <string>
#include <string_view>
#include <system_error>

namespace gatehouse::detail {

// Both return errc::payload_not_representable for input that cannot be converted: not valid
// in its format, MessagePack maps with non-string keys, bin or ext values, NaN or infinite
// floats, non-UTF-8 strings, JSON numbers beyond double range.
std::error_code json_to_msgpack(std::string_view json, std::string& out);
std::error_code msgpack_to_json(std::string_view msgpack, std::string& out);

// MessagePack `bin` holding `bytes`.
void bytes_to_msgpack_bin(std::string_view bytes, std::string& out);

}  // namespace gatehouse::detail
