#include <cstdio>
#include <gatehouse/gatehouse.hpp>

int main() {
    const auto codecs = gatehouse::codec_registry::with_builtin_codecs();
    const auto json = codecs.find("json");
    const auto msgpack = codecs.find_subprotocol("gatehouse.msgpack");
    if (!json || !msgpack) return 1;

    gatehouse::envelope in;
    if (json->decode(R"({"type":"hello","payload":{"n":1},"correlation_id":"c1"})", in)) return 2;
    std::string frame;
    if (msgpack->encode(in, frame)) return 3;
    gatehouse::envelope back;
    if (msgpack->decode(frame, back) || back.type != "hello" || back.correlation_id != "c1") {
        return 4;
    }
    std::printf("consumer ok: %zu-byte msgpack frame\n", frame.size());
    return 0;
}
