// Adding a codec by name: a team whose engine already speaks a compact binary framing
// registers it beside the built-in ones, and clients pick it with the WebSocket
// subprotocol "gatehouse.lenprefix" (or ?codec=lenprefix).
//
// The framing: [u8 type length][type][u8 correlation id length][correlation id][JSON payload]
#include <cstdio>
#include <string>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/client/codec.hpp"
#include "gatehouse/codec.hpp"
#include "gatehouse/codec_error.hpp"
#include "gatehouse/codec_registry.hpp"
#include "gatehouse/envelope.hpp"
#include "gatehouse/version.hpp"

namespace {

class lenprefix_codec final : public gatehouse::codec {
public:
    std::string_view name() const noexcept override { return "lenprefix"; }
    gatehouse::frame_type frame() const noexcept override { return gatehouse::frame_type::binary; }

    std::error_code decode(std::string_view bytes, gatehouse::envelope& out) const override {
        using gatehouse::client::status;
        std::string_view type, corr;
        if (!take(bytes, type) || !take(bytes, corr)) return status::truncated;
        // Reuse the library's validation so this codec enforces the same envelope rules.
        if (!gatehouse::client::is_valid_type(type)) return status::invalid_type;
        if (!corr.empty() && !gatehouse::client::is_valid_correlation_id(corr)) {
            return status::invalid_correlation_id;
        }
        const std::string_view payload = bytes.empty() ? "null" : bytes;
        const auto st =
            gatehouse::client::validate_payload(gatehouse::payload_format::json, payload);
        if (st != status::ok) return st;
        out.type.assign(type);
        out.correlation_id.assign(corr);
        out.payload.assign(payload);
        out.format = gatehouse::payload_format::json;
        out.payload_codec.clear();
        return {};
    }

    std::error_code encode(const gatehouse::envelope& in, std::string& out) const override {
        if (in.format != gatehouse::payload_format::json || in.correlation_id.size() > 255) {
            return gatehouse::client::status::payload_format_mismatch;
        }
        out.clear();
        out.push_back(static_cast<char>(in.type.size()));
        out.append(in.type);
        out.push_back(static_cast<char>(in.correlation_id.size()));
        out.append(in.correlation_id);
        out.append(in.payload);
        return {};
    }

private:
    // Splits one length-prefixed field off the front of `bytes`.
    static bool take(std::string_view& bytes, std::string_view& field) {
        if (bytes.empty()) return false;
        const auto n = static_cast<unsigned char>(bytes[0]);
        if (bytes.size() < 1u + n) return false;
        field = bytes.substr(1, n);
        bytes.remove_prefix(1u + n);
        return true;
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (gatehouse::print_version_if_asked(argc, argv, "example_custom_codec")) return 0;
    auto codecs = gatehouse::codec_registry::with_builtin_codecs();
    if (const auto ec = codecs.add(std::make_shared<lenprefix_codec>())) {
        std::fprintf(stderr, "register: %s\n", ec.message().c_str());
        return 1;
    }

    // A client offered "gatehouse.lenprefix": the gateway finds the codec by subprotocol.
    const auto mine = codecs.find_subprotocol("gatehouse.lenprefix");
    const std::string frame =
        std::string(1, '\x0d') + "player_action" + std::string(1, '\x04') + "c-17" + R"({"x":1})";
    gatehouse::envelope command;
    if (const auto ec = mine->decode(frame, command)) {
        std::fprintf(stderr, "decode: %s\n", ec.message().c_str());
        return 1;
    }
    std::printf("decoded %s (%s): %s\n", command.type.c_str(), command.correlation_id.c_str(),
                command.payload.c_str());

    // The same envelope re-encoded for a JSON client, as the gateway does on egress.
    std::string json;
    if (codecs.find("json")->encode(command, json)) return 1;
    std::printf("as json: %s\n", json.c_str());

    // Bad input is an error code mapped onto the protocol's error codes, never a throw.
    const auto ec = mine->decode(std::string("\x03"
                                             "b d",
                                             4),
                                 command);
    std::printf("bad frame: %s -> %s\n", ec.message().c_str(),
                std::string(gatehouse::protocol_error_code(ec)).c_str());
    return ec && json == R"({"type":"player_action","payload":{"x":1},"correlation_id":"c-17"})"
               ? 0
               : 1;
}
