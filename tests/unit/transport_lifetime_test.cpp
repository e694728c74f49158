#include "transport/transport_server.hpp"

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "gatehouse/connection.hpp"
#include "gatehouse/http.hpp"
#include "transport/transport_events.hpp"

// A connection may outlive its listener and the io_context: a worker still holding an HTTP
// answer, a bus callback holding a stream. What it does then must not reach the io_context
// (run these under the `asan` preset to see a use after free if it did).

namespace {

using namespace std::chrono_literals;
using gatehouse::http_request;
using gatehouse::http_responder;
using gatehouse::http_response;
using gatehouse::log_level;
using gatehouse::send_status;
using gatehouse::shared_frame;
using gatehouse::detail::stream_handler;
using gatehouse::detail::stream_link;
using gatehouse::detail::transport_events;
using gatehouse::detail::upgrade_decision;
using gatehouse::detail::upgrade_request;

// The gateway's side: keeps the first HTTP answer and the first stream for the test.
class keeping_events final : public transport_events {
public:
    void handle_http(const http_request&, http_responder respond) override {
        std::lock_guard<std::mutex> lock(mutex_);
        responder = std::move(respond);
        changed_.notify_all();
    }
    upgrade_decision authorize_upgrade(const upgrade_request&) override {
        upgrade_decision d;
        d.accepted = true;
        d.handler = std::make_shared<keeping_handler>(*this);
        return d;
    }
    bool is_event_stream_request(const http_request&) const noexcept override { return false; }
    upgrade_decision authorize_event_stream(const http_request&) override { return {}; }
    void log(log_level, std::string_view) const override {}

    template <class Pred>
    bool wait_for(Pred done) {
        std::unique_lock<std::mutex> lock(mutex_);
        return changed_.wait_for(lock, 5s, done);
    }

    http_responder responder;
    std::shared_ptr<stream_link> link;  // held strongly, as a bus callback holds a stream

private:
    class keeping_handler final : public stream_handler {
    public:
        explicit keeping_handler(keeping_events& events) : events_(events) {}
        void on_open(const std::shared_ptr<stream_link>& opened) override {
            std::lock_guard<std::mutex> lock(events_.mutex_);
            events_.link = opened;
            events_.changed_.notify_all();
        }
        void on_message(bool, std::string_view) override {}
        void on_activity() override {}
        void on_close(std::uint16_t) override {}

    private:
        keeping_events& events_;
    };

    std::mutex mutex_;
    std::condition_variable changed_;
};

// A listener on an io_context run by one thread, and a blocking client of it.
struct running_listener {
    explicit running_listener(keeping_events& events)
        : io(std::make_unique<asio::io_context>()),
          server(gatehouse::detail::make_transport_server(events, *io, {}, nullptr)) {
        REQUIRE_FALSE(server->listen({asio::ip::make_address("127.0.0.1"), 0}));  // any free port
        thread = std::thread([this] { io->run(); });
        client.connect(server->local_endpoint());
    }
    ~running_listener() {
        if (thread.joinable()) stop();
    }

    void send(std::string_view bytes) { asio::write(client, asio::buffer(bytes)); }

    // As the gateway goes: the I/O thread stops, the listener goes, then the io_context.
    void stop() {
        io->stop();
        thread.join();
        server.reset();
        io.reset();
    }

    std::unique_ptr<asio::io_context> io;
    std::unique_ptr<gatehouse::detail::transport_server> server;
    std::thread thread;
    asio::io_context client_io;
    asio::ip::tcp::socket client{client_io};
};

}  // namespace

TEST_CASE(
    "transport: an HTTP answer given after the listener and its io_context are gone is "
    "dropped",
    "[transport]") {
    keeping_events events;
    running_listener listener(events);
    listener.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(events.wait_for([&] { return static_cast<bool>(events.responder); }));
    listener.stop();
    // A worker answering late: nothing to write to, and no io_context to reach.
    std::thread worker([&] { events.responder(http_response::json(200, "{}")); });
    worker.join();
    events.responder = nullptr;
}

TEST_CASE(
    "transport: a stream held past the listener and its io_context refuses sends and "
    "is destroyed cleanly",
    "[transport]") {
    keeping_events events;
    running_listener listener(events);
    listener.send(
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    REQUIRE(events.wait_for([&] { return events.link != nullptr; }));
    listener.stop();
    shared_frame frame;
    frame.bytes = std::make_shared<const std::string>("late");
    CHECK(events.link->send(frame) == send_status::closed);
    CHECK_FALSE(events.link->ping());
    events.link->close(gatehouse::close_code::going_away, "late");
    CHECK(events.link->buffered_bytes() == 0);
    events.link.reset();  // the connection's last owner: destroyed after its io_context
}
