#include "gatehouse/builtin_codecs.hpp"

#include "gatehouse/client/codec.hpp"
#include "gatehouse/codec_error.hpp"
#include "gatehouse/errc.hpp"
#include "transcode.hpp"

namespace gatehouse {
namespace {

// The built-in codecs are the client codec behind the library interface: one
// implementation of each wire format, fuzzed once, serving both.
class wire_codec final : public codec {
public:
    explicit wire_codec(client::wire_format format) noexcept : format_(format) {}

    std::string_view name() const noexcept override { return client::name_of(format_); }

    frame_type frame() const noexcept override {
        return client::is_text(format_) ? frame_type::text : frame_type::binary;
    }

    std::error_code decode(std::string_view bytes, envelope& out) const override {
        client::envelope view;
        const client::status st = client::decode(format_, bytes, view);
        if (st != client::status::ok) {
            out.correlation_id.assign(view.correlation_id());  // empty unless known
            out.update_id.clear();
            out.traceparent.clear();  // nothing of a previous command may linger
            return st;
        }
        out.type.assign(view.type());
        out.correlation_id.assign(view.correlation_id());
        // A client's update_id means nothing on a command: it is never taken, so no frame
        // can put one where the gateway's own ids travel.
        out.update_id.clear();
        // Decoding dropped a malformed one. Most commands carry none, and clear() is much
        // cheaper than assign() of nothing (measured in bench/micro/codec_bench.cpp).
        if (view.has_traceparent()) {
            out.traceparent.assign(view.traceparent());
        } else {
            out.traceparent.clear();
        }
        out.payload.assign(view.payload());
        out.format = view.format();
        if (view.format() == payload_format::bytes) {
            out.payload_codec.assign(view.payload_codec());
        } else {
            out.payload_codec.clear();
        }
        return {};
    }

    std::error_code encode(const envelope& in, std::string& out) const override {
        client::envelope view;
        client::status st = view.set_type(in.type);
        if (st != client::status::ok) return st;
        if (!in.correlation_id.empty()) {
            st = view.set_correlation_id(in.correlation_id);
            if (st != client::status::ok) return st;
        }
        if (!in.update_id.empty()) {
            st = view.set_update_id(in.update_id);
            if (st != client::status::ok) return st;
        }
        if (!in.traceparent.empty()) {
            st = view.set_traceparent(in.traceparent);
            if (st != client::status::ok) return st;
        }
        std::string converted;  // only when the payload must change format
        if (const auto ec = set_payload(in, view, converted)) return ec;

        // One pass usually suffices: the estimate covers the worst-case JSON escaping of
        // the correlation id and the update id (visible ASCII: at most 2 bytes a character).
        out.resize(in.payload.size() + converted.size() + in.type.size() +
                   6 * in.correlation_id.size() + 2 * in.update_id.size() + in.traceparent.size() +
                   in.payload_codec.size() + 96);
        auto r = client::encode(format_, view, out.data(), out.size());
        if (r.code == client::status::buffer_too_small) {
            out.resize(r.size);
            r = client::encode(format_, view, out.data(), out.size());
        }
        if (r.code != client::status::ok) {
            out.clear();
            return r.code;
        }
        out.resize(r.size);
        return {};
    }

private:
    // Points `view`'s payload at `in.payload`, or at `converted` when the wire format
    // cannot carry the payload's format as it is.
    std::error_code set_payload(const envelope& in, client::envelope& view,
                                std::string& converted) const {
        const payload_format from = in.format;
        if (format_ == client::wire_format::json && from == payload_format::msgpack) {
            if (const auto ec = detail::msgpack_to_json(in.payload, converted)) return ec;
            view.set_payload(payload_format::json, converted);
            return {};
        }
        if (format_ == client::wire_format::json && from == payload_format::bytes) {
            return errc::payload_not_representable;
        }
        if (format_ == client::wire_format::msgpack && from == payload_format::json) {
            if (const auto ec = detail::json_to_msgpack(in.payload, converted)) return ec;
            view.set_payload(payload_format::msgpack, converted);
            return {};
        }
        if (format_ == client::wire_format::msgpack && from == payload_format::bytes) {
            detail::bytes_to_msgpack_bin(in.payload, converted);
            view.set_payload(payload_format::msgpack, converted);
            return {};
        }
        view.set_payload(from, in.payload, in.payload_codec);
        return {};
    }

    client::wire_format format_;
};

}  // namespace

std::shared_ptr<const codec> make_json_codec() {
    return std::make_shared<wire_codec>(client::wire_format::json);
}

std::shared_ptr<const codec> make_msgpack_codec() {
    return std::make_shared<wire_codec>(client::wire_format::msgpack);
}

std::shared_ptr<const codec> make_protobuf_codec() {
    return std::make_shared<wire_codec>(client::wire_format::protobuf);
}

}  // namespace gatehouse
