#include "gateway/resume_join.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "memory_transport.hpp"

// The resume join of docs/protocol.md 6.4 on the in-memory transport, against an in-memory update
// log (memory_transport.hpp) whose reads the test can hold back: the replay, every gap, the
// updates delivered while the read is outstanding (held, then sent once, after the replay),
// and the bound on what is held.

namespace {

using namespace gatehouse_test;

// A frame as a short label: `welcome`, `n=K` (an update with payload {"n":K}), `resumed=N`,
// `gap=ID`, or the type for anything else.
std::string label(const std::string& frame) {
    const auto after = [&frame](std::string_view key) {
        const auto at = frame.find(key);
        if (at == std::string::npos) return std::string();
        const auto start = at + key.size();
        const auto end = frame.find_first_of(",}\"", start);
        return frame.substr(start, end - start);
    };
    if (frame.find("\"type\":\"welcome\"") != std::string::npos) return "welcome";
    if (frame.find("gatehouse.resumed") != std::string::npos) {
        return "resumed=" + after("\"replayed\":");
    }
    if (frame.find("gatehouse.gap") != std::string::npos) return "gap=" + after("\"resume\":\"");
    if (frame.find("\"n\":") != std::string::npos) return "n=" + after("\"n\":");
    return after("\"type\":\"");
}

std::vector<std::string> labels(const std::vector<std::string>& frames) {
    std::vector<std::string> out;
    for (const auto& f : frames) out.push_back(label(f));
    return out;
}

std::string numbered(const std::string& player, int n) {
    return R"({"player_id":")" + player + R"(","type":"tick","payload":{"n":)" + std::to_string(n) +
           "}}";
}

// A core on a manual bus whose updates come from the in-memory log.
struct resume_fixture {
    std::shared_ptr<memory_update_log> log = std::make_shared<memory_update_log>();
    core_on<manual_bus> f;

    explicit resume_fixture(gateway_options options = test_options()) : f(options, log) {
        log->publish_to = [bus = f.bus](const std::string& message) { bus->deliver(message); };
        f.core->start_listener();
    }
};

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("resume: the missed updates, in order, then resumed, then live", "[resume]") {
    resume_fixture r;
    const auto first = r.log->publish(numbered("ann", 1));
    r.log->publish(numbered("ann", 2));
    r.log->publish(numbered("ann", 3));
    r.log->publish(numbered("bob", 99));  // another player's log is not replayed
    auto s = r.f.open("ann", 0, "resume=" + first);
    CHECK(labels(s.link->frames()) == V{"welcome", "n=2", "n=3", "resumed=2"});
    r.log->publish(numbered("ann", 4));
    CHECK(labels(s.link->frames()) == V{"welcome", "n=2", "n=3", "resumed=2", "n=4"});

    // Resuming from the newest id replays nothing.
    const auto newest = r.log->publish(numbered("ann", 5));
    auto again = r.f.open("ann", 0, "resume=" + newest);
    CHECK(labels(again.link->frames()) == V{"welcome", "resumed=0"});
    const auto text = r.f.core->metrics().render();
    CHECK(text.find("gatehouse_resumes_total{outcome=\"replayed\"} 2") != std::string::npos);
    CHECK(text.find("gatehouse_updates_replayed_total 2") != std::string::npos);
    s.handler->on_close(1000);
    again.handler->on_close(1000);
}

TEST_CASE("resume: every gap case answers gatehouse.gap, then live", "[resume]") {
    SECTION("a malformed id is not read from the log") {
        resume_fixture r;
        auto s = r.f.open("ann", 0, "resume=nonsense");
        CHECK(labels(s.link->frames()) == V{"welcome", "gap=nonsense"});
        CHECK(r.log->reads() == 0);
        r.log->publish(numbered("ann", 1));
        CHECK(labels(s.link->frames()) == V{"welcome", "gap=nonsense", "n=1"});
        s.handler->on_close(1000);
    }
    SECTION("an id the log does not hold (trimmed, or never issued)") {
        resume_fixture r;
        r.log->capacity = 2;
        const auto trimmed = r.log->publish(numbered("ann", 1));
        r.log->publish(numbered("ann", 2));
        r.log->publish(numbered("ann", 3));
        auto s = r.f.open("ann", 0, "resume=" + trimmed);
        CHECK(labels(s.link->frames()) == V{"welcome", "gap=" + trimmed});
        // An id from the future (a lost log's, or forged) hides no live update after the gap.
        auto never = r.f.open("ann", 0, "resume=99999999999999-1");
        CHECK(labels(never.link->frames()) == V{"welcome", "gap=99999999999999-1"});
        r.log->publish(numbered("ann", 4));
        CHECK(labels(never.link->frames()) == V{"welcome", "gap=99999999999999-1", "n=4"});
        s.handler->on_close(1000);
        never.handler->on_close(1000);
    }
    SECTION("a lost log and an unavailable one") {
        resume_fixture r;
        const auto id = r.log->publish(numbered("ann", 1));
        r.log->publish(numbered("ann", 2));
        r.log->lost = true;
        auto lost = r.f.open("ann", 0, "resume=" + id);
        CHECK(labels(lost.link->frames()) == V{"welcome", "gap=" + id});
        r.log->lost = false;
        r.log->unavailable = true;
        auto away = r.f.open("ann", 0, "resume=" + id);
        CHECK(labels(away.link->frames()) == V{"welcome", "gap=" + id});
        const auto text = r.f.core->metrics().render();
        CHECK(text.find("gatehouse_resumes_total{outcome=\"gap\"} 2") != std::string::npos);
        lost.handler->on_close(1000);
        away.handler->on_close(1000);
    }
    SECTION("a replay larger than the hard bound (twice the send buffer)") {
        auto options = test_options();
        options.connections.max_buffered_bytes = 300;
        resume_fixture r(options);
        const std::string big(100, 'x');
        const auto id = r.log->publish(numbered("ann", 0));
        for (int n = 1; n <= 8; ++n) {
            r.log->publish(R"({"player_id":"ann","type":"big","payload":")" + big + "\"}");
        }
        auto s = r.f.open("ann", 0, "resume=" + id);
        CHECK(labels(s.link->frames()) == V{"welcome", "gap=" + id});
        s.handler->on_close(1000);
    }
    SECTION("a gateway without a log") {
        core_on<manual_bus> f;
        f.core->start_listener();
        auto s = f.open("ann", 0, "resume=1-1");
        CHECK(labels(s.link->frames()) == V{"welcome", "gap=1-1"});
        s.handler->on_close(1000);
    }
}

TEST_CASE("resume: the log is read with a budget of twice the send buffer", "[resume]") {
    auto options = test_options();
    options.connections.max_buffered_bytes = 300;
    resume_fixture r(options);
    const auto id = r.log->publish(numbered("ann", 0));
    auto s = r.f.open("ann", 0, "resume=" + id);
    REQUIRE(r.log->reads() == 1);
    CHECK(r.log->last_max_bytes() == 600);
    s.handler->on_close(1000);
}

TEST_CASE("resume: updates delivered during the read are held, then sent once, after the replay",
          "[resume]") {
    resume_fixture r;
    r.log->defer_reads = true;
    const auto first = r.log->publish(numbered("ann", 1));
    const auto second = r.log->publish(numbered("ann", 2));
    auto s = r.f.open("ann", 0, "resume=" + first);
    // The read has executed (its answer holds n=2); it has not answered yet.
    REQUIRE(r.log->reads() == 1);
    CHECK(labels(s.link->frames()) == V{"welcome"});
    // Published after the read: held.
    r.log->publish(numbered("ann", 3));
    // A late delivery of n=2 (an instance whose subscription lags): in the replay already.
    update late;
    REQUIRE_FALSE(parse_update(numbered("ann", 2), late));
    late.update_ids = {{"ann", second}};
    r.f.bus->deliver(to_json(late));
    // An unlogged update (plain PUBLISH): held, never deduplicated.
    r.f.bus->deliver(R"({"player_id":"ann","type":"plain","payload":null})");
    // A direct reply is not held.
    s.handler->on_message(true, R"({"type":"gatehouse.nope","correlation_id":"c1"})");
    CHECK(labels(s.link->frames()) == V{"welcome", "error"});
    REQUIRE(r.log->answer_reads() == 1);
    CHECK(labels(s.link->frames()) == V{"welcome", "error", "n=2", "resumed=1", "n=3", "plain"});
    // Later still (Pub/Sub and the log's answer travel on two connections): never sent again.
    r.f.bus->deliver(to_json(late));
    CHECK(labels(s.link->frames()).size() == 6);
    r.log->publish(numbered("ann", 4));
    CHECK(labels(s.link->frames()).back() == "n=4");
    s.handler->on_close(1000);
}

TEST_CASE("resume: what is held during the read is bounded by the send buffer (4008)", "[resume]") {
    auto options = test_options();
    options.connections.max_buffered_bytes = 300;
    resume_fixture r(options);
    r.log->defer_reads = true;
    const auto first = r.log->publish(numbered("ann", 1));
    auto s = r.f.open("ann", 0, "resume=" + first);
    for (int n = 2; n < 20; ++n) r.log->publish(numbered("ann", n));
    CHECK(s.link->close_code() == 4008);
    r.log->answer_reads();  // the connection is closed: nothing more is sent
    CHECK(labels(s.link->frames()) == V{"welcome"});
    s.handler->on_close(4008);
}

namespace {

// A session for `player` resuming from `resume` on a link bounded like the transport (twice the
// send buffer).
std::pair<std::shared_ptr<stream_handler>, std::shared_ptr<memory_link>> open_bounded(
    resume_fixture& r, const std::string& player, const std::string& resume,
    std::size_t max_queued) {
    auto decision = r.f.upgrade(player, "resume=" + resume);
    REQUIRE(decision.accepted);
    auto link = std::make_shared<memory_link>();
    link->bound_queue(max_queued);
    decision.handler->on_open(link);
    return {decision.handler, link};
}

std::string big(const std::string& player, int n) {
    return R"({"player_id":")" + player + R"(","type":"big","payload":{"n":)" + std::to_string(n) +
           R"(,"pad":")" + std::string(100, 'x') + "\"}}";
}

}  // namespace

TEST_CASE("resume: a replay that fits only without what is queued and held answers gap",
          "[resume]") {
    auto options = test_options();
    options.connections.max_buffered_bytes = 350;
    // The transport's bound. The welcome is 93 bytes, each replayed `big` 159, the resumed 45.
    const std::size_t hard = 700;
    resume_fixture r(options);
    r.log->defer_reads = true;
    const auto first = r.log->publish(numbered("ann", 0));
    for (int n = 1; n <= 3; ++n) r.log->publish(big("ann", n));
    auto [handler, link] = open_bounded(r, "ann", first, hard);
    // Held during the read: within the send buffer, so the connection stays open.
    r.log->publish(big("ann", 4));
    REQUIRE(link->close_code() == 0);
    const auto welcome = link->buffered_bytes();
    REQUIRE(r.log->answer_reads() == 1);
    // The replay alone fits the bound; with the welcome and the held update it would not, and
    // the transport would close the connection with 4008 at every resume from `first`.
    CHECK(link->close_code() == 0);
    CHECK(labels(link->frames()) == V{"welcome", "gap=" + first, "n=4"});
    CHECK(link->buffered_bytes() > welcome);
    const auto text = r.f.core->metrics().render();
    CHECK(text.find("gatehouse_resumes_total{outcome=\"gap\"} 1") != std::string::npos);
    // Nothing is skipped after the gap.
    r.log->publish(numbered("ann", 5));
    CHECK(labels(link->frames()).back() == "n=5");
    handler->on_close(1000);

    // The same replay with nothing held fits: replayed.
    resume_fixture again(options);
    const auto from = again.log->publish(numbered("ann", 0));
    for (int n = 1; n <= 3; ++n) again.log->publish(big("ann", n));
    auto [h2, l2] = open_bounded(again, "ann", from, hard);
    CHECK(l2->close_code() == 0);
    CHECK(labels(l2->frames()) == V{"welcome", "n=1", "n=2", "n=3", "resumed=3"});
    CHECK(l2->buffered_bytes() <= hard);
    h2->on_close(1000);
}

TEST_CASE("resume: a latest update held during the read keeps its key", "[resume]") {
    resume_fixture r;
    r.log->defer_reads = true;
    const auto first = r.log->publish(numbered("ann", 1));
    auto s = r.f.open("ann", 0, "resume=" + first);
    r.log->publish(
        R"({"player_id":"ann","type":"pos","payload":{"n":2},"delivery":"latest","key":"k"})");
    REQUIRE(r.log->answer_reads() == 1);
    CHECK(labels(s.link->frames()) == V{"welcome", "resumed=0", "n=2"});
    // Flushed keyed: a later value of `k` can still replace it.
    CHECK(s.link->keys().back() == "k");
    s.handler->on_close(1000);
}

TEST_CASE("resume: an event stream resumes from Last-Event-ID and its events carry id:",
          "[resume]") {
    resume_fixture r;
    const auto first = r.log->publish(numbered("ann", 1));
    const auto second = r.log->publish(numbered("ann", 2));
    http_request request;
    request.method = "GET";
    request.path = "/sse/player";
    request.headers.emplace_back("Authorization", "Bearer " + test_token("ann"));
    request.headers.emplace_back("Last-Event-ID", first);
    auto decision = r.f.core->authorize_event_stream(request);
    REQUIRE(decision.accepted);
    auto link = std::make_shared<memory_link>();
    decision.handler->on_open(link);
    auto frames = link->frames();
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].rfind("event: tick\nid: " + second + "\ndata: ", 0) == 0);
    CHECK(frames[1].rfind("event: gatehouse.resumed\ndata: ", 0) == 0);
    const auto third = r.log->publish(numbered("ann", 3));
    r.f.bus->deliver(R"({"player_id":"ann","type":"plain","payload":null})");
    frames = link->frames();
    REQUIRE(frames.size() == 4);
    CHECK(frames[2].rfind("event: tick\nid: " + third + "\n", 0) == 0);
    CHECK(frames[3].rfind("event: plain\ndata: ", 0) == 0);  // unlogged: no id
    decision.handler->on_close(0);
}

TEST_CASE("resume: an event stream's Last-Event-ID wins over ?resume=", "[resume]") {
    // An EventSource that reconnects by itself reuses its first URL and sends the id of the
    // last event it got: the query's older id would replay what the client has.
    resume_fixture r;
    const auto first = r.log->publish(numbered("ann", 1));
    r.log->publish(numbered("ann", 2));
    const auto third = r.log->publish(numbered("ann", 3));
    r.log->publish(numbered("ann", 4));
    http_request request;
    request.method = "GET";
    request.path = "/sse/player";
    request.query = "resume=" + first;
    request.headers.emplace_back("Authorization", "Bearer " + test_token("ann"));
    request.headers.emplace_back("Last-Event-ID", third);
    auto decision = r.f.core->authorize_event_stream(request);
    REQUIRE(decision.accepted);
    auto link = std::make_shared<memory_link>();
    decision.handler->on_open(link);
    const auto frames = link->frames();
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].find("\"n\":4") != std::string::npos);
    CHECK(frames[1].rfind("event: gatehouse.resumed\ndata: ", 0) == 0);
    CHECK(frames[1].find("\"replayed\":1") != std::string::npos);
    decision.handler->on_close(0);
}

TEST_CASE("resume: a players update carries each player's own id", "[resume]") {
    resume_fixture r;
    const auto stream = [&r](const std::string& player) {
        http_request request;
        request.method = "GET";
        request.path = "/sse/player";
        request.headers.emplace_back("Authorization", "Bearer " + test_token(player));
        auto decision = r.f.core->authorize_event_stream(request);
        REQUIRE(decision.accepted);
        auto link = std::make_shared<memory_link>();
        decision.handler->on_open(link);
        return std::make_pair(decision.handler, link);
    };
    auto ann = stream("ann");
    auto bob = stream("bob");
    std::vector<std::pair<std::string, std::string>> ids;
    r.log->publish_logged(R"({"player_ids":["ann","bob"],"type":"tick","payload":{"n":1}})",
                          [&ids](std::error_code, update_ids got) { ids = std::move(got); });
    REQUIRE(ids.size() == 2);
    REQUIRE(ids[0].second != ids[1].second);
    REQUIRE(ann.second->frames().size() == 1);
    REQUIRE(bob.second->frames().size() == 1);
    CHECK(ann.second->frames()[0].find("id: " + ids[0].second + "\n") != std::string::npos);
    CHECK(bob.second->frames()[0].find("id: " + ids[1].second + "\n") != std::string::npos);
    // A long list (looked up through a map): the same.
    r.log->publish_logged(
        R"({"player_ids":["x1","x2","x3","x4","x5","x6","x7","x8","bob","ann"],"type":"t"})",
        [&ids](std::error_code, update_ids got) { ids = std::move(got); });
    REQUIRE(ids.size() == 10);
    REQUIRE(ann.second->frames().size() == 2);
    REQUIRE(bob.second->frames().size() == 2);
    CHECK(bob.second->frames()[1].find("id: " + ids[8].second + "\n") != std::string::npos);
    CHECK(ann.second->frames()[1].find("id: " + ids[9].second + "\n") != std::string::npos);
    ann.first->on_close(0);
    bob.first->on_close(0);
}

TEST_CASE("reserved namespace: a gatehouse. command is invalid_envelope and never on the bus",
          "[resume]") {
    core_on<manual_bus> f;
    auto s = f.open("ann");
    s.handler->on_message(true, R"({"type":"gatehouse.resumed","correlation_id":"c1"})");
    CHECK(contains(s.link->frames(), "invalid_envelope"));
    CHECK(f.bus->appended().empty());
    http_request r;
    r.method = "POST";
    r.path = "/commands";
    r.headers.emplace_back("Authorization", "Bearer " + test_token("ann"));
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = R"({"type":"gatehouse.x"})";
    int status = 0;
    f.core->handle_http(r, [&status](http_response answer) { status = answer.status; });
    CHECK(status == 400);
    CHECK(f.bus->appended().empty());
    s.handler->on_close(1000);
}

TEST_CASE("POST /updates publishes through the log with the publish key", "[resume]") {
    auto options = test_options();
    options.publish_key = "pk";
    resume_fixture r(options);
    auto ann = r.f.open("ann");
    const auto post = [&r](std::string key, std::string body) {
        http_request q;
        q.method = "POST";
        q.path = "/updates";
        q.headers.emplace_back("Authorization", "Bearer " + key);
        q.headers.emplace_back("Content-Type", "application/json");
        q.body = std::move(body);
        http_response answer;
        r.f.core->handle_http(q, [&answer](http_response a) { answer = std::move(a); });
        return answer;
    };
    auto ok = post("pk", numbered("ann", 1));
    CHECK(ok.status == 202);
    CHECK(ok.body == R"({"update_ids":{"ann":"7-1"}})");
    CHECK(labels(ann.link->frames()) == V{"welcome", "n=1"});
    auto room = post("pk", R"({"room":"r","type":"x"})");
    CHECK(room.status == 202);
    CHECK(room.body == R"({"update_ids":{}})");
    CHECK(post("wrong", numbered("ann", 2)).status == 401);
    CHECK(post("pk", R"({"type":"x"})").status == 400);
    ann.handler->on_close(1000);

    // Without a log the gateway has no such route.
    auto no_log_options = test_options();
    no_log_options.publish_key = "pk";
    core_on<manual_bus> bare(no_log_options);
    http_request q;
    q.method = "POST";
    q.path = "/updates";
    int status = 0;
    bare.core->handle_http(q, [&status](http_response a) { status = a.status; });
    CHECK(status == 404);
}

TEST_CASE("resume: a publisher racing resumes: every update exactly once, in order", "[resume]") {
    resume_fixture r;
    const auto open_stream = [&r](const std::string& last) {
        http_request request;
        request.method = "GET";
        request.path = "/sse/player";
        request.headers.emplace_back("Authorization", "Bearer " + test_token("ann"));
        request.headers.emplace_back("Last-Event-ID", last);
        auto decision = r.f.core->authorize_event_stream(request);
        REQUIRE(decision.accepted);
        auto link = std::make_shared<memory_link>();
        decision.handler->on_open(link);
        return std::make_pair(decision.handler, link);
    };
    constexpr int total = 3000;
    std::string last = r.log->publish(numbered("ann", 0));
    std::thread publisher([&r] {
        for (int n = 1; n <= total; ++n) r.log->publish(numbered("ann", n));
    });
    int next = 1;
    int resumes = 0;
    const auto take = [&](const std::vector<std::string>& frames) {
        for (const auto& f : frames) {
            const auto l = label(f);
            if (l.rfind("resumed=", 0) == 0) continue;
            REQUIRE(l == "n=" + std::to_string(next));
            const auto at = f.find("\nid: ") + 5;
            last = f.substr(at, f.find('\n', at) - at);
            ++next;
        }
    };
    while (next <= total && resumes < 2000) {
        auto [handler, link] = open_stream(last);
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        handler->on_close(0);
        take(link->frames());
        ++resumes;
    }
    publisher.join();
    auto [handler, link] = open_stream(last);
    handler->on_close(0);
    take(link->frames());
    CHECK(next == total + 1);
    INFO(resumes << " resumes");
}
