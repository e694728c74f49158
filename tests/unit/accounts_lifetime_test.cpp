#include "gatehouse/accounts.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/in_process_bus.hpp"

// The accounts object, the gateway routing to it, the worker pool and the user store may be
// destroyed in any order while account jobs are running and queued (ASan checks that nothing
// is used after it is freed; the `ci` preset runs this under ASan and UBSan). A job finishing
// while its gateway lives answers its client; one finishing after the gateway is gone is
// dropped, and its client sees the connection close.

namespace {

using namespace std::chrono_literals;

// Where the store's login lookups wait until the test opens it: one job then runs inside the
// store, the others wait in the pool's queue.
struct gate {
    std::mutex mutex;
    std::condition_variable changed;
    bool open = false;
    int entered = 0;
    int left = 0;
    bool store_destroyed = false;

    void pass() {
        std::unique_lock<std::mutex> lock(mutex);
        ++entered;
        changed.notify_all();
        changed.wait_for(lock, 20s, [this] { return open; });
    }
    void leave() {
        const std::lock_guard<std::mutex> lock(mutex);
        ++left;
        changed.notify_all();
    }
    void release() {
        const std::lock_guard<std::mutex> lock(mutex);
        open = true;
        changed.notify_all();
    }
    template <typename Pred>
    bool wait(Pred done, std::chrono::milliseconds limit = 10s) {
        std::unique_lock<std::mutex> lock(mutex);
        return changed.wait_for(lock, limit, [&] { return done(*this); });
    }
};

// A real SQLite store whose login lookups pass the gate first.
class gated_store final : public gatehouse::user_store {
public:
    gated_store(std::unique_ptr<gatehouse::user_store> inner, std::shared_ptr<gate> g)
        : inner_(std::move(inner)), gate_(std::move(g)) {}
    ~gated_store() override {
        const std::lock_guard<std::mutex> lock(gate_->mutex);
        gate_->store_destroyed = true;
        gate_->changed.notify_all();
    }

    std::error_code create_user(gatehouse::user_record& user) override {
        return inner_->create_user(user);
    }
    std::error_code find_user_by_login(std::string_view login,
                                       gatehouse::user_record& out) override {
        gate_->pass();
        const auto ec = inner_->find_user_by_login(login, out);
        gate_->leave();
        return ec;
    }
    std::error_code find_user(std::string_view player_id, gatehouse::user_record& out) override {
        return inner_->find_user(player_id, out);
    }
    std::error_code update_settings(std::string_view player_id, std::string_view display_name,
                                    std::string_view preferences) override {
        return inner_->update_settings(player_id, display_name, preferences);
    }
    std::error_code update_password(std::string_view player_id,
                                    std::string_view password_hash) override {
        return inner_->update_password(player_id, password_hash);
    }
    std::error_code add_refresh_token(const gatehouse::refresh_token_record& token) override {
        return inner_->add_refresh_token(token);
    }
    std::error_code rotate_refresh_token(std::string_view presented_hash, std::int64_t now_ms,
                                         gatehouse::refresh_token_record& next) override {
        return inner_->rotate_refresh_token(presented_hash, now_ms, next);
    }
    std::error_code revoke_refresh_family(std::string_view presented_hash,
                                          std::int64_t now_ms) override {
        return inner_->revoke_refresh_family(presented_hash, now_ms);
    }
    std::error_code revoke_player_tokens(std::string_view player_id) override {
        return inner_->revoke_player_tokens(player_id);
    }

private:
    std::unique_ptr<gatehouse::user_store> inner_;
    std::shared_ptr<gate> gate_;
};

// One `POST /login` on a connection of its own, read until the server closes it (5 s bound on
// every socket call). Empty when nothing came back.
std::string post_login(const std::string& address) {
    const auto colon = address.rfind(':');
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
    inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval timeout{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::string response;
    const std::string body = R"({"username":"nobody","password":"wrong password"})";
    const std::string request =
        "POST /login HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        "Content-Type: application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0 &&
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size())) {
        char buf[4096];
        for (;;) {
            const auto n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            response.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    return response;
}

enum class part { accounts, gateway, pool, store };

const char* name_of(part p) {
    switch (p) {
        case part::accounts: return "accounts";
        case part::gateway: return "gateway";
        case part::pool: return "pool";
        case part::store: return "store";
    }
    return "?";
}

constexpr int clients = 3;

// Builds everything, puts one login job in the store and two in the pool's queue, then
// destroys the four parts in `order`, opening the gate just before step `release`.
void destroy_in_order(const std::array<part, 4>& order, std::size_t release) {
    auto g = std::make_shared<gate>();
    std::unique_ptr<gatehouse::user_store> sqlite;
    REQUIRE_FALSE(gatehouse::open_user_store("sqlite::memory:", sqlite));
    std::shared_ptr<gatehouse::user_store> store =
        std::make_shared<gated_store>(std::move(sqlite), g);
    auto pool = std::make_shared<gatehouse::worker_pool>(1);

    auto bus = std::make_shared<gatehouse::in_process_bus>();
    gatehouse::gateway_options gw_options;
    gw_options.listen = "127.0.0.1:0";
    gw_options.threads = 1;
    gw_options.jwt_secret = "lifetime-test-secret";
    gw_options.shutdown_timeout = 500ms;
    auto gw = std::make_unique<gatehouse::gateway>(
        gw_options, gatehouse::codec_registry::with_builtin_codecs(), bus, bus);

    gatehouse::accounts_options options;
    options.jwt_secret = gw_options.jwt_secret;
    options.password_cost = {1, 8192};
    options.queue_timeout = 30s;  // a queued job always runs: the test counts them
    auto accounts = std::make_unique<gatehouse::accounts>(options, store,
                                                          gatehouse::make_memory_limiter(), pool);
    accounts->add_routes(*gw);
    REQUIRE_FALSE(gw->start());
    const auto address = gw->local_address();

    std::array<std::string, clients> answers;
    std::vector<std::thread> threads;
    std::atomic<int> answered{0};
    for (int i = 0; i < clients; ++i) {
        threads.emplace_back([&, i] {
            answers[static_cast<std::size_t>(i)] = post_login(address);
            ++answered;
        });
    }
    REQUIRE(g->wait([](gate& s) { return s.entered == 1; }));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (pool->queued() < clients - 1 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    REQUIRE(pool->queued() == clients - 1);

    bool released = false;
    bool answered_by_gateway = false;
    for (std::size_t step = 0; step < order.size(); ++step) {
        if (step == release) {
            g->release();
            released = true;
        }
        switch (order[step]) {
            case part::accounts: accounts.reset(); break;
            case part::pool: pool.reset(); break;
            case part::store: store.reset(); break;
            case part::gateway:
                if (released) {
                    // The jobs are running or done: let every answer reach its client before
                    // the gateway goes, so that each is known to have been answered.
                    const auto until = std::chrono::steady_clock::now() + 10s;
                    while (answered < clients && std::chrono::steady_clock::now() < until) {
                        std::this_thread::sleep_for(1ms);
                    }
                    answered_by_gateway = true;
                    // A job may still be returning from its responder while the gateway
                    // goes: the transport severs its connections first, so the answer's last
                    // reference to one never outlives the gateway's io_context.
                }
                gw.reset();
                break;
        }
    }
    if (!released) g->release();
    for (auto& t : threads) t.join();

    // Every job ran (the pool drained its queue when its last owner let it go), and the store
    // went with the last job that held it: nothing kept it alive in a cycle.
    CHECK(g->wait([](gate& s) { return s.left == clients && s.store_destroyed; }));
    for (const auto& a : answers) {
        if (answered_by_gateway) {
            CHECK(a.rfind("HTTP/1.1 401", 0) == 0);
        } else {
            CHECK(a.empty());  // the gateway closed the connection; the late answer was dropped
        }
    }
}

}  // namespace

TEST_CASE("accounts: the accounts, gateway, pool and store go in any order with jobs in flight",
          "[accounts][lifetime]") {
    std::array<part, 4> order{part::accounts, part::gateway, part::pool, part::store};
    std::sort(order.begin(), order.end());
    do {
        // The gate must open before the pool's last owner goes (its destructor runs the queued
        // jobs, which would wait for the gate): the last of accounts, gateway and pool.
        std::size_t last_owner = 0;
        for (std::size_t i = 0; i < order.size(); ++i) {
            if (order[i] != part::store) last_owner = i;
        }
        for (std::size_t release = 0; release <= last_owner; ++release) {
            INFO("order " << name_of(order[0]) << ", " << name_of(order[1]) << ", "
                          << name_of(order[2]) << ", " << name_of(order[3])
                          << "; jobs released before step " << release);
            destroy_in_order(order, release);
        }
    } while (std::next_permutation(order.begin(), order.end()));
}
