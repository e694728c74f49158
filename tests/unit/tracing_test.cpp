#include "gatehouse/tracing.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tracing/otlp_json.hpp"

// Trace contexts, the OTLP/HTTP JSON encoding of spans, and the tracer's queue and export
// against a real HTTP receiver on 127.0.0.1.

namespace {

using namespace std::chrono_literals;
using gatehouse::span;
using gatehouse::span_kind;
using gatehouse::span_status;
using gatehouse::trace_context;
using gatehouse::tracer;
using gatehouse::tracer_options;
using json = nlohmann::json;

constexpr const char* client_traceparent =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// Accepts connections on 127.0.0.1 one at a time, reads one request each (head and
// Content-Length body), answers `status` and keeps the bodies.
class receiver {
public:
    explicit receiver(int status) : status_(status) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0);
        REQUIRE(::listen(fd_, 8) == 0);
        socklen_t len = sizeof sa;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
        port_ = ntohs(sa.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~receiver() {
        stop_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
    }
    std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::vector<std::string> requests() {
        std::lock_guard<std::mutex> lock(mutex_);
        return requests_;
    }

private:
    void run() {
        while (!stop_) {
            const int c = ::accept(fd_, nullptr, nullptr);
            if (c < 0) return;
            std::string request;
            char buffer[4096];
            for (;;) {
                const auto head_end = request.find("\r\n\r\n");
                if (head_end != std::string::npos) {
                    const auto at = request.find("Content-Length: ");
                    const auto length =
                        at == std::string::npos ? 0 : std::stoul(request.substr(at + 16));
                    if (request.size() >= head_end + 4 + length) break;
                }
                const auto n = ::recv(c, buffer, sizeof buffer, 0);
                if (n <= 0) break;
                request.append(buffer, static_cast<std::size_t>(n));
            }
            {
                std::lock_guard<std::mutex> lock(mutex_);
                requests_.push_back(request);
            }
            const std::string answer = "HTTP/1.1 " + std::to_string(status_) +
                                       " X\r\nContent-Length: 2\r\nContent-Type: "
                                       "application/json\r\n\r\n{}";
            ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
            ::close(c);
        }
    }

    int status_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::vector<std::string> requests_;
    std::thread thread_;
};

tracer_options options_for(std::string endpoint) {
    tracer_options o;
    o.endpoint = std::move(endpoint);
    o.service_name = "unit";
    return o;
}

json body_of(const std::string& request) {
    return json::parse(request.substr(request.find("\r\n\r\n") + 4));
}

}  // namespace

TEST_CASE("trace_context parses and writes a traceparent", "[tracing]") {
    const auto parsed = trace_context::parse(client_traceparent);
    REQUIRE(parsed);
    CHECK(parsed->traceparent() == client_traceparent);
    CHECK(parsed->flags == 1);
    CHECK(parsed->span[0] == 0x00);
    CHECK(parsed->span[1] == 0xf0);
    for (const char* bad : {"", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
                            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}) {
        CHECK_FALSE(trace_context::parse(bad));
    }
}

TEST_CASE("tracer spans: children of a traceparent, or roots of new traces", "[tracing]") {
    tracer t(options_for("http://127.0.0.1:9"));
    const auto child = t.start("child", span_kind::producer, std::string_view(client_traceparent));
    const auto parent = *trace_context::parse(client_traceparent);
    CHECK(child.context.trace == parent.trace);
    CHECK(child.parent_span == parent.span);
    CHECK(child.context.span != parent.span);
    CHECK(child.start_unix_ns > 0);
    // The traceparent a service continues from names the child.
    const auto continued = trace_context::parse(child.traceparent());
    REQUIRE(continued);
    CHECK(continued->trace == parent.trace);
    CHECK(continued->span == child.context.span);

    const auto root = t.start("root", span_kind::server, std::string_view("not a traceparent"));
    CHECK(root.parent_span == gatehouse::span_id{});
    CHECK(root.context.trace != gatehouse::trace_id{});
    CHECK(root.context.trace != parent.trace);
    CHECK(root.context.span != gatehouse::span_id{});
    const auto other = t.start("root", span_kind::server);
    CHECK(other.context.trace != root.context.trace);
}

TEST_CASE("spans in the OTLP/HTTP JSON encoding", "[tracing]") {
    span s;
    s.context = *trace_context::parse(client_traceparent);
    s.parent_span = {1, 2, 3, 4, 5, 6, 7, 8};
    s.name = "command ingress";
    s.kind = span_kind::producer;
    s.start_unix_ns = 1700000000123456789;
    s.end_unix_ns = 1700000000223456789;
    s.set("gatehouse.stream_id", "1700000000000-0");
    s.set("count", std::int64_t{9007199254740993});
    s.set("flag", true);
    s.set("small", 7);  // an int, not a bool
    s.set("ratio", 0.5);
    s.set("bad utf8", std::string("\xff", 1));
    s.events.push_back({"acked", 1700000000200000000});
    s.links.push_back(*trace_context::parse(client_traceparent));
    s.status = span_status::error;
    s.status_message = "bus_unavailable";
    span root;
    root.context = s.context;
    root.name = "root";

    const std::vector<span> spans{s, root};
    std::string encoded = "left over from a previous batch";
    gatehouse::detail::encode_otlp_json({{"service.name", "gw"}, {"service.instance.id", "gw-1"}},
                                        spans.data(), spans.size(), encoded);
    const auto doc = json::parse(encoded);
    const auto& rs = doc.at("resourceSpans").at(0);
    CHECK(rs.at("resource").at("attributes") ==
          json::parse(R"([{"key":"service.name","value":{"stringValue":"gw"}},
                          {"key":"service.instance.id","value":{"stringValue":"gw-1"}}])"));
    const auto& scope = rs.at("scopeSpans").at(0);
    CHECK(scope.at("scope").at("name") == "gatehouse");
    const auto& e = scope.at("spans").at(0);
    CHECK(e.at("traceId") == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(e.at("spanId") == "00f067aa0ba902b7");
    CHECK(e.at("parentSpanId") == "0102030405060708");
    CHECK(e.at("name") == "command ingress");
    CHECK(e.at("kind") == 4);
    CHECK(e.at("flags") == 1);
    // 64-bit integers as decimal strings (protobuf's JSON mapping), beyond a double's 2^53.
    CHECK(e.at("startTimeUnixNano") == "1700000000123456789");
    CHECK(e.at("endTimeUnixNano") == "1700000000223456789");
    CHECK(e.at("attributes") == json::parse(R"([
        {"key":"gatehouse.stream_id","value":{"stringValue":"1700000000000-0"}},
        {"key":"count","value":{"intValue":"9007199254740993"}},
        {"key":"flag","value":{"boolValue":true}},
        {"key":"small","value":{"intValue":"7"}},
        {"key":"ratio","value":{"doubleValue":0.5}},
        {"key":"bad utf8","value":{"stringValue":"\ufffd"}}])"));
    CHECK(e.at("events") ==
          json::parse(R"([{"timeUnixNano":"1700000000200000000","name":"acked"}])"));
    CHECK(e.at("links") == json::parse(R"([{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736",
                                             "spanId":"00f067aa0ba902b7"}])"));
    CHECK(e.at("status") == json::parse(R"({"code":2,"message":"bus_unavailable"})"));
    // A root span has no parentSpanId; an unset status is code 0.
    const auto& r = scope.at("spans").at(1);
    CHECK_FALSE(r.contains("parentSpanId"));
    CHECK_FALSE(r.contains("events"));
    CHECK(r.at("status") == json::parse(R"({"code":0})"));
}

TEST_CASE("tracer exports batches to the endpoint's path", "[tracing]") {
    receiver collector(200);
    auto o = options_for(collector.endpoint() + "/otel/v1/traces");
    o.max_batch_spans = 2;
    o.export_interval = 60s;  // full batches and flush() only
    tracer t(o);
    for (int i = 0; i < 5; ++i) {
        t.end(t.start("s" + std::to_string(i), span_kind::internal));
    }
    REQUIRE(t.flush(10s));
    // Batches of at most 2: 2 + 2 + the flushed 1, or 2 + 1 + 2 when the export thread took
    // three spans at once.
    const auto requests = collector.requests();
    REQUIRE(requests.size() == 3);
    std::vector<std::string> names;
    for (const auto& request : requests) {
        CHECK(request.rfind("POST /otel/v1/traces HTTP/1.1\r\n", 0) == 0);
        CHECK(request.find("Content-Type: application/json\r\n") != std::string::npos);
        const auto doc = body_of(request);  // kept: the loop reads into it
        const auto& spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"];
        CHECK(spans.size() <= 2);
        for (const auto& s : spans) names.push_back(s["name"]);
    }
    CHECK(names == std::vector<std::string>{"s0", "s1", "s2", "s3", "s4"});
    CHECK(t.stats().spans_exported == 5);
    CHECK(t.stats().export_failures == 0);
}

TEST_CASE("tracer: the default path, the interval, and what the destructor sends", "[tracing]") {
    receiver collector(200);
    {
        auto o = options_for(collector.endpoint());
        o.export_interval = 100ms;
        tracer t(o);
        t.end(t.start("timed", span_kind::internal));
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (collector.requests().empty() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(10ms);
        }
        REQUIRE(collector.requests().size() == 1);
        CHECK(collector.requests()[0].rfind("POST /v1/traces ", 0) == 0);
        t.end(t.start("last", span_kind::internal));
    }
    const auto requests = collector.requests();
    REQUIRE(requests.size() == 2);
    CHECK(body_of(requests[1])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] == "last");
}

TEST_CASE("tracer: failures are counted and a full queue drops", "[tracing]") {
    receiver refusing(503);
    auto o = options_for(refusing.endpoint());
    o.max_queued_spans = 3;
    o.export_interval = 60s;
    std::vector<std::string> logged;
    std::mutex log_mutex;
    o.log = [&](gatehouse::log_level, std::string_view message) {
        std::lock_guard<std::mutex> lock(log_mutex);
        logged.emplace_back(message);
    };
    tracer t(o);
    for (int i = 0; i < 5; ++i) t.end(t.start("s", span_kind::internal));
    CHECK(t.stats().spans_dropped == 2);
    REQUIRE(t.flush(10s));
    CHECK(t.stats().spans_failed == 3);
    CHECK(t.stats().export_failures == 1);
    CHECK(t.stats().spans_exported == 0);
    std::lock_guard<std::mutex> lock(log_mutex);
    REQUIRE(logged.size() == 1);
    CHECK(logged[0].find("answered 503") != std::string::npos);
}

TEST_CASE("tracer: a collector that accepts but never answers costs one export_timeout",
          "[tracing]") {
    // A listening socket nobody accepts on: the kernel completes the connection and takes
    // the request, and no answer ever comes, as with a hung collector.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::listen(fd, 8) == 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    auto o = options_for("http://127.0.0.1:" + std::to_string(ntohs(sa.sin_port)));
    o.export_interval = 60s;
    o.export_timeout = 200ms;
    std::vector<std::string> logged;
    std::mutex log_mutex;
    o.log = [&](gatehouse::log_level, std::string_view message) {
        std::lock_guard<std::mutex> lock(log_mutex);
        logged.emplace_back(message);
    };
    const auto started = std::chrono::steady_clock::now();
    {
        tracer t(o);
        t.end(t.start("hung", span_kind::internal));
        REQUIRE(t.flush(10s));
        CHECK(t.stats().export_failures == 1);
        CHECK(t.stats().spans_failed == 1);
        // What is queued at the end after a failed export is given up on, not sent again.
        t.end(t.start("at the end", span_kind::internal));
    }
    CHECK(std::chrono::steady_clock::now() - started < 5s);
    ::close(fd);
    std::lock_guard<std::mutex> lock(log_mutex);
    REQUIRE(logged.size() == 1);
    CHECK(logged[0].find("no answer from the collector") != std::string::npos);
}

TEST_CASE("tracer refuses a bad endpoint", "[tracing]") {
    for (const char* bad : {"", "https://collector:4318", "collector:4318", "http://:4318",
                            "http://collector:0", "http://collector:4318/a b"}) {
        CHECK_THROWS_AS(tracer(options_for(bad)), std::invalid_argument);
    }
    auto o = options_for("http://127.0.0.1:4318");
    o.max_batch_spans = 0;
    CHECK_THROWS_AS(tracer(o), std::invalid_argument);
}
