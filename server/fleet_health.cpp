#include "fleet_health.hpp"

#include <cctype>
#include <string>
#include <utility>

namespace gatehouse_server {
namespace {

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
    }
    return true;
}

const char* json_bool(bool b) { return b ? "true" : "false"; }

}  // namespace

std::string store_kind(std::string_view db_url) {
    if (starts_with_nocase(db_url, "sqlite:")) return "sqlite";
    if (starts_with_nocase(db_url, "postgresql://") || starts_with_nocase(db_url, "postgres://")) {
        return "postgresql";
    }
    return "unknown";
}

std::string fleet_health::ready_fields() const {
    // The names are fixed words (no escaping needed): "in-process", "redis", store_kind().
    return "\"bus\":\"" + bus +
           "\",\"bus_connected\":" + json_bool(bus_connected && bus_connected()) + ",\"store\":\"" +
           store + "\",\"store_up\":" + json_bool(store_up.load());
}

void add_ready_checks(gatehouse::gateway_options& options,
                      const std::shared_ptr<fleet_health>& health) {
    options.extra_ready = [health] { return health->store_up.load(); };
    options.extra_ready_reason = "the user store is not reachable";
    options.ready_fields = [health] { return health->ready_fields(); };
}

void add_fleet_metrics(gatehouse::gateway& gw, const std::shared_ptr<fleet_health>& health) {
    auto& m = gw.metrics();
    const std::string labels = "bus=\"" + health->bus + "\",store=\"" + health->store +
                               "\",gateway_id=\"" + gw.gateway_id() + "\"";
    m.gauge("gatehouse_info", "This instance: its bus, user store and gateway id.", labels).set(1);
    m.gauge_callback("gatehouse_store_up", "1 while the user store answers (checked every 2 s).",
                     [health] { return health->store_up.load() ? 1.0 : 0.0; });
}

store_probe::store_probe(std::shared_ptr<gatehouse::user_store> store,
                         std::shared_ptr<fleet_health> health, std::chrono::milliseconds interval,
                         gatehouse::log_sink log)
    : store_(std::move(store)),
      health_(std::move(health)),
      interval_(interval),
      log_(std::move(log)),
      thread_([this] { run(); }) {}

store_probe::~store_probe() { stop(); }

void store_probe::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void store_probe::run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
        lock.unlock();
        const auto ec = store_->ping();
        const bool up = !ec;
        if (health_->store_up.exchange(up) != up && log_) {
            if (up) {
                log_(gatehouse::log_level::info, "user store reachable again; /ready answers 200");
            } else {
                log_(gatehouse::log_level::warn, "user store not reachable (" + ec.message() +
                                                     "); /ready answers 503 until it is");
            }
        }
        lock.lock();
    }
}

}  // namespace gatehouse_server
