// gatehouse_codec: the client codec (gatehouse/client/codec.hpp) as a Python module.
// Frames and payloads cross as bytes, copied, so no Python object ever views C++ memory.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "gatehouse/client/codec.hpp"

namespace py = pybind11;
namespace gc = gatehouse::client;

namespace {

// A decoded or to-be-encoded envelope, owning its bytes (a Python object may outlive the frame).
struct py_envelope {
    std::string type;
    py::bytes payload{"null"};
    std::string payload_format{"json"};
    std::optional<std::string> correlation_id;
    std::string payload_codec;
    std::optional<std::string> update_id;    // docs/protocol.md 6.4
    std::optional<std::string> traceparent;  // docs/protocol.md 6.8
};

// The status names as the C++ enum spells them: what CodecError.status carries.
const char* status_name(gc::status s) {
    switch (s) {
        case gc::status::ok: return "ok";
        case gc::status::truncated: return "truncated";
        case gc::status::syntax_error: return "syntax_error";
        case gc::status::invalid_utf8: return "invalid_utf8";
        case gc::status::too_deep: return "too_deep";
        case gc::status::trailing_bytes: return "trailing_bytes";
        case gc::status::invalid_payload: return "invalid_payload";
        case gc::status::not_a_map: return "not_a_map";
        case gc::status::missing_type: return "missing_type";
        case gc::status::invalid_type: return "invalid_type";
        case gc::status::invalid_correlation_id: return "invalid_correlation_id";
        case gc::status::duplicate_field: return "duplicate_field";
        case gc::status::invalid_update_id: return "invalid_update_id";
        case gc::status::invalid_traceparent: return "invalid_traceparent";
        case gc::status::buffer_too_small: return "buffer_too_small";
        case gc::status::payload_format_mismatch: return "payload_format_mismatch";
        case gc::status::invalid_argument: return "invalid_argument";
    }
    return "unknown";
}

// gatehouse_codec.CodecError, created at import; kept alive by the module that holds it.
PyObject* codec_error_type = nullptr;

// Decode failures carry the docs/protocol.md code and the frame's correlation id when known;
// encode failures neither (an encode status may share a decode status's name).
enum class failed { decode, encode };

[[noreturn]] void raise_codec_error(gc::status s, failed what,
                                    std::string_view correlation_id = {}) {
    const py::object cls = py::reinterpret_borrow<py::object>(codec_error_type);
    py::object error = cls(std::string(status_name(s)) + ": " + gc::describe(s));
    error.attr("status") = status_name(s);
    error.attr("code") = static_cast<int>(s);
    const char* protocol = what == failed::decode ? gc::protocol_code(s) : nullptr;
    error.attr("protocol_code") = protocol != nullptr ? py::object(py::str(protocol)) : py::none();
    error.attr("correlation_id") =
        correlation_id.empty() ? py::object(py::none())
                               : py::object(py::str(correlation_id.data(), correlation_id.size()));
    PyErr_SetObject(codec_error_type, error.ptr());
    throw py::error_already_set();
}

gc::wire_format wire_format_of(std::string_view name) {
    gc::wire_format format{};
    if (!gc::parse_wire_format(name, format)) {
        throw py::value_error("unknown codec '" + std::string(name) +
                              "': expected json, msgpack or protobuf");
    }
    return format;
}

gc::payload_format payload_format_of(std::string_view name) {
    if (name == "json") return gc::payload_format::json;
    if (name == "msgpack") return gc::payload_format::msgpack;
    if (name == "bytes") return gc::payload_format::bytes;
    throw py::value_error("unknown payload format '" + std::string(name) +
                          "': expected json, msgpack or bytes");
}

// bytes, bytearray, memoryview (anything with the buffer protocol) or str (as UTF-8).
std::string bytes_of(const py::handle& value, const char* what) {
    if (py::isinstance<py::str>(value)) return value.cast<std::string>();
    if (py::isinstance<py::bytes>(value)) return value.cast<std::string>();
    if (PyObject_CheckBuffer(value.ptr()) != 0) {
        const py::buffer_info info = py::reinterpret_borrow<py::buffer>(value).request();
        const auto* data = static_cast<const char*>(info.ptr);
        return {data, static_cast<std::size_t>(info.size * info.itemsize)};
    }
    throw py::type_error(std::string(what) + " must be bytes, bytearray, memoryview or str");
}

// What a payload of None stands for: null in the payload's format, nothing for opaque bytes.
py::bytes null_payload(gc::payload_format format) {
    switch (format) {
        case gc::payload_format::json: return py::bytes("null");
        case gc::payload_format::msgpack: return py::bytes("\xc0", 1);
        case gc::payload_format::bytes: break;
    }
    return py::bytes("");
}

// An envelope from Python arguments; payload None is null (see null_payload).
py_envelope make_envelope(std::string type, const py::handle& payload, std::string payload_format,
                          std::optional<std::string> correlation_id, std::string payload_codec,
                          std::optional<std::string> update_id,
                          std::optional<std::string> traceparent) {
    const gc::payload_format format = payload_format_of(payload_format);
    py_envelope e;
    e.type = std::move(type);
    e.payload = payload.is_none() ? null_payload(format) : py::bytes(bytes_of(payload, "payload"));
    // As a decoded envelope reads: json and msgpack payloads name themselves.
    e.payload_codec =
        format == gc::payload_format::bytes ? std::move(payload_codec) : payload_format;
    e.payload_format = std::move(payload_format);
    e.correlation_id = std::move(correlation_id);
    e.update_id = std::move(update_id);
    e.traceparent = std::move(traceparent);
    return e;
}

const char* payload_format_name(gc::payload_format format) {
    switch (format) {
        case gc::payload_format::json: return "json";
        case gc::payload_format::msgpack: return "msgpack";
        case gc::payload_format::bytes: return "bytes";
    }
    return "bytes";
}

py::bytes encode_envelope(std::string_view codec, const py_envelope& in) {
    const gc::wire_format wire = wire_format_of(codec);
    const gc::payload_format format = payload_format_of(in.payload_format);
    std::string payload = in.payload;  // py::bytes -> the bytes, kept alive for the view below
    gc::envelope env;
    gc::status st = env.set_type(in.type);
    if (st != gc::status::ok) raise_codec_error(st, failed::encode);
    if (in.correlation_id) {
        st = env.set_correlation_id(*in.correlation_id);
        if (st != gc::status::ok) raise_codec_error(st, failed::encode);
    }
    if (in.update_id) {
        st = env.set_update_id(*in.update_id);
        if (st != gc::status::ok) raise_codec_error(st, failed::encode);
    }
    if (in.traceparent) {
        st = env.set_traceparent(*in.traceparent);
        if (st != gc::status::ok) raise_codec_error(st, failed::encode);
    }
    env.set_payload(format, payload, in.payload_codec);
    std::string frame(payload.size() + 256, '\0');
    gc::encode_result r = gc::encode(wire, env, frame.data(), frame.size());
    if (r.code == gc::status::buffer_too_small) {
        frame.resize(r.size);
        r = gc::encode(wire, env, frame.data(), frame.size());
    }
    if (r.code != gc::status::ok) raise_codec_error(r.code, failed::encode);
    return {frame.data(), r.size};
}

py_envelope decode_frame(std::string_view codec, const py::handle& frame_object) {
    const gc::wire_format wire = wire_format_of(codec);
    const std::string frame = bytes_of(frame_object, "frame");
    gc::envelope env;
    const gc::status st = gc::decode(wire, frame, env);
    if (st != gc::status::ok) raise_codec_error(st, failed::decode, env.correlation_id());
    py_envelope out;
    out.type = std::string(env.type());
    out.payload = py::bytes(env.payload().data(), env.payload().size());
    out.payload_format = payload_format_name(env.format());
    out.payload_codec = std::string(env.payload_codec());
    if (env.has_correlation_id()) out.correlation_id = std::string(env.correlation_id());
    if (env.has_update_id()) out.update_id = std::string(env.update_id());
    if (env.has_traceparent()) out.traceparent = std::string(env.traceparent());
    return out;
}

std::string repr(const py_envelope& e) {
    std::string s = "Envelope(type=" + py::repr(py::str(e.type)).cast<std::string>() +
                    ", payload=" + py::repr(e.payload).cast<std::string>() + ", payload_format='" +
                    e.payload_format + "'";
    if (e.payload_format == "bytes") {
        s += ", payload_codec=" + py::repr(py::str(e.payload_codec)).cast<std::string>();
    }
    if (e.correlation_id) {
        s += ", correlation_id=" + py::repr(py::str(*e.correlation_id)).cast<std::string>();
    }
    if (e.update_id) s += ", update_id=" + py::repr(py::str(*e.update_id)).cast<std::string>();
    if (e.traceparent) {
        s += ", traceparent=" + py::repr(py::str(*e.traceparent)).cast<std::string>();
    }
    return s + ")";
}

}  // namespace

PYBIND11_MODULE(gatehouse_codec, m) {
    m.doc() =
        "gatehouse's client codec: envelopes (docs/protocol.md section 3) in the json, msgpack and "
        "protobuf wire formats. Payloads are bytes in their payload format; see docs/bindings.md.";

    codec_error_type = PyErr_NewExceptionWithDoc(
        "gatehouse_codec.CodecError",
        "An envelope could not be decoded or encoded.\n\n"
        "Attributes: status (the codec's status name, e.g. 'truncated'), code (its number), "
        "protocol_code ('invalid_frame', 'invalid_envelope' or None for encode errors), "
        "correlation_id (the frame's correlation id when known, else None).",
        PyExc_ValueError, nullptr);
    if (codec_error_type == nullptr) throw py::error_already_set();
    m.add_object("CodecError", py::reinterpret_steal<py::object>(codec_error_type));

    m.attr("CODECS") = py::make_tuple("json", "msgpack", "protobuf");
    m.attr("PAYLOAD_FORMATS") = py::make_tuple("json", "msgpack", "bytes");
    m.attr("MAX_TYPE_LENGTH") = gc::max_type_length;
    m.attr("MAX_CORRELATION_ID_CHARS") = gc::max_correlation_id_chars;
    m.attr("MAX_UPDATE_ID_LENGTH") = gc::max_update_id_length;
    m.attr("TRACEPARENT_LENGTH") = gc::traceparent_length;

    py::class_<py_envelope>(m, "Envelope",
                            "An envelope: type, payload bytes in payload_format, correlation id, "
                            "update id, traceparent.")
        .def(py::init(&make_envelope), py::arg("type"), py::arg("payload") = py::none(),
             py::arg("payload_format") = "json", py::arg("correlation_id") = py::none(),
             py::arg("payload_codec") = "", py::arg("update_id") = py::none(),
             py::arg("traceparent") = py::none(),
             "payload None means null in payload_format (nothing for 'bytes'); str is taken as "
             "UTF-8.")
        .def_readwrite("type", &py_envelope::type)
        .def_readwrite("payload", &py_envelope::payload)
        .def_readwrite("payload_format", &py_envelope::payload_format,
                       "'json', 'msgpack' or 'bytes' (opaque, named by payload_codec)")
        .def_readwrite("correlation_id", &py_envelope::correlation_id, "str, or None if absent")
        .def_readwrite("payload_codec", &py_envelope::payload_codec,
                       "'json', 'msgpack', or for 'bytes' the name the frame gave")
        .def_readwrite(
            "update_id", &py_envelope::update_id,
            "str, or None if absent: a logged update's id (docs/protocol.md 6.4), to hand "
            "back as ?resume=")
        .def_readwrite("traceparent", &py_envelope::traceparent,
                       "str, or None if absent: the W3C traceparent (docs/protocol.md 6.8)")
        .def("__repr__", &repr)
        .def("__eq__", [](const py_envelope& a, const py_envelope& b) {
            return a.type == b.type && a.payload.equal(b.payload) &&
                   a.payload_format == b.payload_format && a.correlation_id == b.correlation_id &&
                   a.payload_codec == b.payload_codec && a.update_id == b.update_id &&
                   a.traceparent == b.traceparent;
        });

    m.def("encode", &encode_envelope, py::arg("codec"), py::arg("envelope"),
          "Encodes an Envelope into one frame (bytes) of `codec`. The payload is not converted: "
          "json payloads travel on json and protobuf, msgpack on msgpack and protobuf, bytes on "
          "protobuf only; otherwise CodecError('payload_format_mismatch').");
    m.def(
        "encode",
        [](std::string_view codec, std::string type, const py::handle& payload,
           std::string payload_format, std::optional<std::string> correlation_id,
           std::string payload_codec, std::optional<std::string> update_id,
           std::optional<std::string> traceparent) {
            return encode_envelope(
                codec, make_envelope(std::move(type), payload, std::move(payload_format),
                                     std::move(correlation_id), std::move(payload_codec),
                                     std::move(update_id), std::move(traceparent)));
        },
        py::arg("codec"), py::arg("type"), py::arg("payload") = py::none(), py::kw_only(),
        py::arg("payload_format") = "json", py::arg("correlation_id") = py::none(),
        py::arg("payload_codec") = "", py::arg("update_id") = py::none(),
        py::arg("traceparent") = py::none(),
        "Encodes type/payload/correlation_id (and update_id, traceparent) into one frame "
        "(bytes) of `codec`.");
    m.def("decode", &decode_frame, py::arg("codec"), py::arg("frame"),
          "Decodes one frame (bytes, or str for a JSON text frame) into an Envelope; raises "
          "CodecError.");
    m.def(
        "validate_payload",
        [](std::string_view format, const py::handle& payload) {
            const std::string bytes = bytes_of(payload, "payload");
            const gc::status st = gc::validate_payload(payload_format_of(format), bytes);
            if (st != gc::status::ok) raise_codec_error(st, failed::encode);
        },
        py::arg("payload_format"), py::arg("payload"),
        "Raises CodecError unless payload is exactly one well-formed value of payload_format.");
    m.def(
        "is_text", [](std::string_view codec) { return gc::is_text(wire_format_of(codec)); },
        py::arg("codec"), "True when the codec's frames are WebSocket text frames (json).");
    m.def(
        "subprotocol",
        [](std::string_view codec) {
            return "gatehouse." + std::string(gc::name_of(wire_format_of(codec)));
        },
        py::arg("codec"), "The Sec-WebSocket-Protocol value to offer, e.g. 'gatehouse.json'.");
    m.def(
        "is_valid_type", [](std::string_view type) { return gc::is_valid_type(type); },
        py::arg("type"));
    m.def(
        "is_valid_correlation_id",
        [](std::string_view id) { return gc::is_valid_correlation_id(id); },
        py::arg("correlation_id"));
    m.def(
        "is_valid_update_id", [](std::string_view id) { return gc::is_valid_update_id(id); },
        py::arg("update_id"));
    m.def(
        "is_valid_traceparent",
        [](std::string_view value) { return gc::is_valid_traceparent(value); },
        py::arg("traceparent"));
    m.def(
        "describe",
        [](const std::string& status) {
            for (int v = 0; v < 64; ++v) {
                const auto s = static_cast<gc::status>(v);
                if (status == status_name(s)) return std::string(gc::describe(s));
            }
            throw py::value_error("unknown status '" + status + "'");
        },
        py::arg("status"), "The English description of a status name, e.g. 'truncated'.");
}
