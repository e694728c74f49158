// Uses one thing of each optional component, so that linking proves their exported link
// interfaces (hiredis for gatehouse::redis; SQLite, libpq and libsodium for
// gatehouse::accounts) are complete.
#include <cstdio>

#include "gatehouse/credentials.hpp"
#include "gatehouse/redis_bus.hpp"
#include "gatehouse/user_store.hpp"

int main() {
    // Port 1: nothing listens, so the bus never connects; constructing and closing it is enough.
    gatehouse::redis_bus_options options;
    options.url = "redis://127.0.0.1:1";
    gatehouse::redis_bus bus(options);
    const bool connected = bus.connected();
    bus.close();
    if (connected) return 1;

    // libsodium's CSPRNG, 32 bytes as unpadded base64url.
    if (gatehouse::make_refresh_token().size() != 43) return 2;
    if (gatehouse::user_store_schema_version() <= 0) return 3;
    std::printf("components ok: gatehouse::redis and gatehouse::accounts linked\n");
    return 0;
}
