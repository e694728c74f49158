#pragma once
// What /ready and /metrics say about this instance's dependencies (docs/operations.md): which
// bus and user store it uses, whether each is reachable, and a probe thread that keeps asking
// the user store. A load balancer takes an instance whose database is unreachable out of
// rotation through /ready's 503, as it does for one whose Redis is.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "gatehouse/gateway.hpp"
#include "gatehouse/log.hpp"
#include "gatehouse/user_store.hpp"

namespace gatehouse_server {

// The store kind a --db URL names, as /ready and gatehouse_info show it: `sqlite`,
// `postgresql` (also for postgres://), or `unknown`.
std::string store_kind(std::string_view db_url);

// Shared between the gateway's /ready (I/O threads), /metrics and the probe thread.
struct fleet_health {
    std::string bus;    // "in-process" or "redis"
    std::string store;  // store_kind()
    // Set before the gateway starts, read on I/O threads afterwards.
    std::function<bool()> bus_connected;
    std::atomic<bool> store_up{true};

    // `"bus":"redis","bus_connected":true,"store":"postgresql","store_up":true`.
    std::string ready_fields() const;
};

// Wires `health` into the gateway's options: /ready is 503 while the store is down, and its
// JSON says which bus and store this is. Call before the gateway is built.
void add_ready_checks(gatehouse::gateway_options& options,
                      const std::shared_ptr<fleet_health>& health);

// gatehouse_info{bus,store,gateway_id} 1 and gatehouse_store_up on /metrics.
void add_fleet_metrics(gatehouse::gateway& gw, const std::shared_ptr<fleet_health>& health);

// Asks the store whether it answers (user_store::ping) every `interval` on a thread of its
// own, and keeps the answer in `health->store_up`; logs each change once.
class store_probe {
public:
    store_probe(std::shared_ptr<gatehouse::user_store> store, std::shared_ptr<fleet_health> health,
                std::chrono::milliseconds interval, gatehouse::log_sink log);
    ~store_probe();
    store_probe(const store_probe&) = delete;
    store_probe& operator=(const store_probe&) = delete;

    // Ends the thread (waits for a ping in progress, bounded by the store's own deadlines).
    void stop();

private:
    void run();

    std::shared_ptr<gatehouse::user_store> store_;
    std::shared_ptr<fleet_health> health_;
    std::chrono::milliseconds interval_;
    gatehouse::log_sink log_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace gatehouse_server
