#include "transport/http_exchange.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using gatehouse::http_request;
using gatehouse::http_responder;
using gatehouse::http_response;
using gatehouse::log_level;
using gatehouse::detail::http_exchange;
using gatehouse::detail::http_exchange_host;
using gatehouse::detail::stream_kind;
using gatehouse::detail::transport_events;
using gatehouse::detail::transport_options;
using gatehouse::detail::upgrade_decision;
using gatehouse::detail::upgrade_request;

// The gateway: answers each request with its method and path, at once or when told to.
class recording_events final : public transport_events {
public:
    void handle_http(const http_request& request, http_responder respond) override {
        requests.push_back(request.method + " " + request.path);
        auto response = http_response::json(200, "\"" + request.path + "\"");
        if (answer_inline) {
            respond(std::move(response));
        } else {
            later.emplace_back(std::move(respond), std::move(response));
        }
    }
    upgrade_decision authorize_upgrade(const upgrade_request& request) override {
        upgrade_decision d;
        d.accepted = request.path == "/ws";
        if (!d.accepted) d.refusal = http_response::problem(401, "unauthorized");
        return d;
    }
    bool is_event_stream_request(const http_request& request) const noexcept override {
        return request.path == "/sse";
    }
    upgrade_decision authorize_event_stream(const http_request&) override {
        upgrade_decision d;
        d.accepted = true;
        return d;
    }
    void log(log_level, std::string_view) const override {}
    void answered_by_transport(std::string_view method, std::string_view, std::string_view,
                               const http_response& response,
                               std::chrono::microseconds duration) override {
        by_transport.push_back({std::string(method), response.status, duration});
    }

    struct transport_answer {
        std::string method;
        int status;
        std::chrono::microseconds duration;
    };
    std::vector<transport_answer> by_transport;
    bool answer_inline = true;
    std::vector<std::string> requests;
    std::vector<std::pair<http_responder, http_response>> later;
};

// The connection: collects what the exchange queues; answers reach the exchange at once, as
// they do on the connection's strand.
class recording_host final : public http_exchange_host {
public:
    void queue_bytes(std::shared_ptr<const std::string> bytes) override { out += *bytes; }
    void end_after_output() override { ended = true; }
    void set_deadline_at(std::int64_t at_ms) override { deadline = at_ms; }
    bool is_open() const override { return true; }
    http_responder responder(std::uint64_t sequence) override {
        return [this, sequence](http_response response) {
            std::string input;
            if (exchange->on_response(sequence, response, input) ==
                http_exchange::after_response::resume) {
                resumed.push_back(input);
            }
        };
    }

    http_exchange* exchange = nullptr;
    std::string out;
    bool ended = false;
    std::int64_t deadline = 0;
    std::vector<std::string> resumed;
};

struct fixture {
    fixture() : exchange(host, events, options, "192.0.2.7") { host.exchange = &exchange; }
    http_exchange::progress feed(std::string_view data) { return exchange.consume(data); }

    recording_events events;
    recording_host host;
    transport_options options;
    http_exchange exchange;
};

std::size_t count(const std::string& text, std::string_view what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("http exchange: pipelined requests answered inline, in order, on one connection",
          "[transport]") {
    fixture f;
    CHECK(f.feed("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n") ==
          http_exchange::progress::reading);
    CHECK(f.events.requests == std::vector<std::string>{"GET /a", "GET /b"});
    CHECK(count(f.host.out, "HTTP/1.1 200 OK") == 2);
    CHECK(f.host.out.find("\"/a\"") < f.host.out.find("\"/b\""));
    CHECK_FALSE(f.host.ended);
    CHECK(f.host.deadline > 0);  // the idle deadline
}

TEST_CASE("http exchange: a request behind a pending answer waits for it", "[transport]") {
    fixture f;
    f.events.answer_inline = false;
    CHECK(f.feed("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n") ==
          http_exchange::progress::paused);
    CHECK(f.events.requests == std::vector<std::string>{"GET /a"});
    CHECK(f.host.out.empty());
    auto [respond, response] = std::move(f.events.later.front());
    respond(std::move(response));
    CHECK(count(f.host.out, "HTTP/1.1 200 OK") == 1);
    // The pipelined request comes back to the connection to be read again.
    REQUIRE(f.host.resumed.size() == 1);
    CHECK(f.host.resumed[0] == "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
}

TEST_CASE("http exchange: a bad request is answered 400 and ends the connection", "[transport]") {
    fixture f;
    CHECK(f.feed("GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n") ==
          http_exchange::progress::paused);
    CHECK(f.host.out.rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(f.host.out.find("Connection: close\r\n") != std::string::npos);
    CHECK(f.host.ended);
    CHECK(f.events.requests.empty());
}

TEST_CASE("http exchange: an accepted upgrade switches, and the bytes after it are the stream's",
          "[transport]") {
    fixture f;
    std::string_view data =
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        "FRAME";
    CHECK(f.exchange.consume(data) == http_exchange::progress::switched);
    CHECK(data == "FRAME");
    CHECK(f.exchange.switch_to().kind == stream_kind::websocket);
    CHECK(f.host.out.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
    CHECK(f.host.out.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") !=
          std::string::npos);
    CHECK(f.host.deadline == 0);
}

TEST_CASE("http exchange: a refused upgrade is answered and the connection stays HTTP",
          "[transport]") {
    fixture f;
    CHECK(f.feed("GET /other HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n") == http_exchange::progress::reading);
    CHECK(f.host.out.rfind("HTTP/1.1 401 ", 0) == 0);
    CHECK(f.events.requests == std::vector<std::string>{"GET /a"});
    CHECK_FALSE(f.host.ended);
}

TEST_CASE("http exchange: an event stream switches after its head", "[transport]") {
    fixture f;
    CHECK(f.feed("GET /sse HTTP/1.1\r\nHost: x\r\n\r\n") == http_exchange::progress::switched);
    CHECK(f.exchange.switch_to().kind == stream_kind::event_stream);
    CHECK(f.host.out.find("Content-Type: text/event-stream\r\n") != std::string::npos);
}

TEST_CASE("http exchange: the header deadline answers 408 only while headers are incomplete",
          "[transport]") {
    fixture f;
    CHECK_FALSE(f.exchange.header_deadline_passed());  // nothing in progress: just close
    CHECK(f.feed("GET /a HTTP/1.1\r\nHo") == http_exchange::progress::reading);
    CHECK(f.exchange.header_deadline_passed());
    CHECK(f.host.out.rfind("HTTP/1.1 408 ", 0) == 0);
    CHECK(f.host.ended);
}

TEST_CASE("http exchange: a transport answer's duration runs from the request's first byte",
          "[transport][access_log]") {
    fixture f;
    CHECK(f.feed("GET /a HTTP/1.1\r\nHo") == http_exchange::progress::reading);
    const auto waited = std::chrono::milliseconds(60);
    std::this_thread::sleep_for(waited);
    CHECK(f.exchange.header_deadline_passed());
    REQUIRE(f.events.by_transport.size() == 1);
    CHECK(f.events.by_transport[0].status == 408);
    // Microseconds, not milliseconds read as microseconds (which would be 1,000 times less).
    CHECK(f.events.by_transport[0].duration >= waited);
    CHECK(f.events.by_transport[0].duration < std::chrono::seconds(5));
}

TEST_CASE("http exchange: a body cut short by the connection's end is reported once",
          "[transport][access_log]") {
    fixture f;
    CHECK(f.feed("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab") ==
          http_exchange::progress::reading);
    f.exchange.connection_ended();
    f.exchange.connection_ended();
    REQUIRE(f.events.by_transport.size() == 1);
    CHECK(f.events.by_transport[0].method == "POST");
    CHECK(f.events.by_transport[0].status == 0);
    CHECK(f.events.requests.empty());

    // Headers not whole yet: nothing to report (no request was read).
    fixture g;
    CHECK(g.feed("GET /a HTTP/1.1\r\nHo") == http_exchange::progress::reading);
    g.exchange.connection_ended();
    CHECK(g.events.by_transport.empty());
}
