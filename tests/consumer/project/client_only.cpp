#include <cstdio>
#include <gatehouse/client/codec.hpp>

int main() {
    gatehouse::client::envelope e;
    if (gatehouse::client::decode(gatehouse::client::wire_format::json, R"({"type":"ping"})", e) !=
        gatehouse::client::status::ok) {
        return 1;
    }
    std::printf("client-only consumer ok: %.*s\n", static_cast<int>(e.type().size()),
                e.type().data());
    return e.type() == "ping" ? 0 : 1;
}
