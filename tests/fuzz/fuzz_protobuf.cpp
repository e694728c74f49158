// libFuzzer target: Protobuf envelopes, with libprotobuf's generated code as an independent
// oracle of the wire format.
#include "fuzz_check.hpp"
#include "gatehouse.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    fuzz::gc::envelope e;
    if (fuzz::check_decoder(fuzz::gc::wire_format::protobuf, input, e) != fuzz::gc::status::ok) {
        return 0;
    }
    // What we accept, libprotobuf must parse to the same fields.
    gatehouse::v1::Envelope msg;
    fuzz::require(msg.ParseFromArray(data, static_cast<int>(size)), "libprotobuf refuses");
    fuzz::require(msg.type() == e.type(), "type differs");
    fuzz::require(msg.has_correlation_id() == e.has_correlation_id(), "correlation presence");
    fuzz::require(msg.correlation_id() == e.correlation_id(), "correlation id differs");
    // Fields 5 and 6: the same value when it is valid, dropped otherwise.
    fuzz::require(e.update_id() == (fuzz::gc::is_valid_update_id(msg.update_id())
                                        ? std::string_view(msg.update_id())
                                        : std::string_view()),
                  "update id differs");
    fuzz::require(e.traceparent() == (fuzz::gc::is_valid_traceparent(msg.traceparent())
                                          ? std::string_view(msg.traceparent())
                                          : std::string_view()),
                  "traceparent differs");
    const std::string& codec = msg.payload_codec();
    if (codec == "json" || codec == "msgpack") {
        fuzz::require(msg.payload() == e.payload() || msg.payload().empty(), "payload differs");
    } else {
        fuzz::require(msg.payload() == e.payload(), "payload differs");
        fuzz::require(codec == e.payload_codec(), "payload codec differs");
    }
    return 0;
}
