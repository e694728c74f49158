// libFuzzer target: MessagePack envelopes, with msgpack-c as an independent oracle.
#include <msgpack.hpp>

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    fuzz::gc::envelope e;
    if (fuzz::check_decoder(fuzz::gc::wire_format::msgpack, input, e) != fuzz::gc::status::ok) {
        return 0;
    }
    // What we accept, msgpack-c must read as one map holding the same type.
    try {
        std::size_t offset = 0;
        const msgpack::object_handle oh = msgpack::unpack(input.data(), input.size(), offset);
        fuzz::require(offset == input.size(), "msgpack-c sees trailing bytes");
        const msgpack::object& obj = oh.get();
        fuzz::require(obj.type == msgpack::type::MAP, "msgpack-c sees no map");
        bool found = false;
        for (std::uint32_t i = 0; i < obj.via.map.size; ++i) {
            const auto& kv = obj.via.map.ptr[i];
            if (kv.key.type == msgpack::type::STR && kv.key.as<std::string_view>() == "type") {
                fuzz::require(kv.val.as<std::string_view>() == e.type(), "type differs");
                found = true;
            }
        }
        fuzz::require(found, "msgpack-c finds no type");
    } catch (const std::exception& err) {
        std::fprintf(stderr, "msgpack-c: %s\n", err.what());
        fuzz::require(false, "msgpack-c refuses a frame we accept");
    }
    return 0;
}
