#pragma once
// netstring_codec: envelopes as three netstrings (https://cr.yp.to/proto/netstrings.txt) in one
// binary frame: `<len>:<type>,` `<len>:<correlation id>,` `<len>:<JSON payload>,`.
//
//     4:cook,3:c-1,11:{"count":3},
//
// An empty correlation id means "absent" (the gateway then assigns one); an empty payload
// means null. Netstrings are trivial to write in any language (a shell script can), which is
// why a team with tooling of its own might pick them. Clients select the codec with the
// subprotocol `gatehouse.netstring`.

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

#include "gatehouse/client/codec.hpp"
#include "gatehouse/codec.hpp"
#include "gatehouse/envelope.hpp"
#include "gatehouse/errc.hpp"

namespace standalone {

class netstring_codec final : public gatehouse::codec {
public:
    std::string_view name() const noexcept override { return "netstring"; }
    gatehouse::frame_type frame() const noexcept override { return gatehouse::frame_type::binary; }

    std::error_code decode(std::string_view bytes, gatehouse::envelope& out) const override {
        using gatehouse::client::status;
        out.correlation_id.clear();  // "unknown" unless the frame is readable
        std::string_view type, corr, payload;
        if (const auto st = take(bytes, type); st != status::ok) return st;
        if (const auto st = take(bytes, corr); st != status::ok) return st;
        if (const auto st = take(bytes, payload); st != status::ok) return st;
        if (!bytes.empty()) return status::trailing_bytes;
        // The library's own checks, so this codec enforces docs/protocol.md's envelope rules.
        const bool corr_ok = corr.empty() || gatehouse::client::is_valid_correlation_id(corr);
        out.correlation_id.assign(corr_ok ? corr : std::string_view{});
        if (type.empty()) return status::missing_type;
        if (!gatehouse::client::is_valid_type(type)) return status::invalid_type;
        if (!corr_ok) return status::invalid_correlation_id;
        if (payload.empty()) payload = "null";
        const auto st =
            gatehouse::client::validate_payload(gatehouse::payload_format::json, payload);
        if (st != status::ok) return st;
        out.type.assign(type);
        out.payload.assign(payload);
        out.format = gatehouse::payload_format::json;
        out.payload_codec.clear();
        return {};
    }

    std::error_code encode(const gatehouse::envelope& in, std::string& out) const override {
        // Everything the gateway sends (welcome, ack, error, updates) has a JSON payload; a
        // MessagePack or Protobuf payload from another client has no place in this format.
        if (in.format != gatehouse::payload_format::json) {
            return gatehouse::errc::payload_not_representable;
        }
        out.clear();
        put(out, in.type);
        put(out, in.correlation_id);
        put(out, in.payload);
        return {};
    }

private:
    static constexpr std::size_t max_length_digits = 9;  // < 1 GB; the gateway caps far lower

    // Splits one netstring off the front of `bytes`.
    static gatehouse::client::status take(std::string_view& bytes, std::string_view& field) {
        using gatehouse::client::status;
        std::size_t length = 0;
        std::size_t digits = 0;
        while (digits < bytes.size() && bytes[digits] >= '0' && bytes[digits] <= '9') {
            if (digits == max_length_digits) return status::syntax_error;
            length = length * 10 + static_cast<std::size_t>(bytes[digits] - '0');
            ++digits;
        }
        if (digits == bytes.size()) return status::truncated;
        // The spec forbids leading zeros ("01:x,"): one canonical form per value.
        if (digits == 0 || bytes[digits] != ':' || (digits > 1 && bytes[0] == '0')) {
            return status::syntax_error;
        }
        const std::size_t start = digits + 1;
        if (bytes.size() - start < length + 1) return status::truncated;
        if (bytes[start + length] != ',') return status::syntax_error;
        field = bytes.substr(start, length);
        bytes.remove_prefix(start + length + 1);
        return status::ok;
    }

    static void put(std::string& out, std::string_view field) {
        out.append(std::to_string(field.size())).push_back(':');
        out.append(field).push_back(',');
    }
};

}  // namespace standalone
