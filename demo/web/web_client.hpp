#pragma once
// The Click & Cook browser client, served by gatehouse-server --demo.

#include "gatehouse/gateway.hpp"

namespace gatehouse_demo {

/// Adds GET routes serving the browser client's files (`/` and its assets) to `gw`.
/// Call before `gw.start()`.
void add_web_client_routes(gatehouse::gateway& gw);

}  // namespace gatehouse_demo
