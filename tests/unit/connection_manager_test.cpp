#include "gatehouse/connection_manager.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fake_connection.hpp"
#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/errc.hpp"

using gatehouse::close_code;
using gatehouse::connection_info;
using gatehouse::connection_manager;
using gatehouse::connection_manager_options;
using gatehouse::send_status;
using gatehouse::slow_consumer_policy;
using gatehouse::update;
using nlohmann::json;
using test_support::fake_connection;

namespace {

// Wraps a codec and counts its encodes.
class counting_codec final : public gatehouse::codec {
public:
    explicit counting_codec(std::shared_ptr<const gatehouse::codec> inner)
        : inner_(std::move(inner)) {}
    std::string_view name() const noexcept override { return inner_->name(); }
    gatehouse::frame_type frame() const noexcept override { return inner_->frame(); }
    std::error_code decode(std::string_view bytes, gatehouse::envelope& out) const override {
        return inner_->decode(bytes, out);
    }
    std::error_code encode(const gatehouse::envelope& in, std::string& out) const override {
        encodes_.fetch_add(1);
        return inner_->encode(in, out);
    }
    int encodes() const { return encodes_.load(); }

private:
    std::shared_ptr<const gatehouse::codec> inner_;
    mutable std::atomic<int> encodes_{0};
};

// A codec that cannot encode anything, by error or by exception.
class failing_codec final : public gatehouse::codec {
public:
    explicit failing_codec(bool throws) : throws_(throws) {}
    std::string_view name() const noexcept override { return "failing"; }
    gatehouse::frame_type frame() const noexcept override { return gatehouse::frame_type::binary; }
    std::error_code decode(std::string_view, gatehouse::envelope&) const override {
        return gatehouse::errc::payload_not_representable;
    }
    std::error_code encode(const gatehouse::envelope&, std::string&) const override {
        if (throws_) throw std::runtime_error("codec bug");
        return gatehouse::errc::payload_not_representable;
    }

private:
    bool throws_;
};

connection_info info_for(std::string player,
                         std::shared_ptr<const gatehouse::codec> c = gatehouse::make_json_codec()) {
    connection_info info;
    info.player_id = std::move(player);
    info.wire_codec = std::move(c);
    return info;
}

std::shared_ptr<fake_connection> add(
    connection_manager& m, const std::string& id, const std::string& player,
    std::shared_ptr<const gatehouse::codec> c = gatehouse::make_json_codec()) {
    auto conn = fake_connection::make(id);
    m.add(conn, info_for(player, std::move(c)));
    return conn;
}

// What a JSON client received, as JSON.
std::vector<json> received(const fake_connection& c) {
    std::vector<json> out;
    for (const auto& text : c.texts()) out.push_back(json::parse(text));
    return out;
}

gatehouse::shared_frame text_frame(std::string s) {
    return gatehouse::make_frame(std::move(s), gatehouse::frame_type::text);
}

}  // namespace

TEST_CASE("connection_manager: add, look up, remove", "[connection_manager]") {
    connection_manager m;
    auto c1 = add(m, "c1", "p1");
    auto c2 = add(m, "c2", "p1");
    auto c3 = add(m, "c3", "p2");
    CHECK(m.size() == 3);
    CHECK(m.stats().connections == 3);
    CHECK(m.connections_of("p1") == std::vector<std::string>{"c1", "c2"});
    CHECK(m.connections_of("p2") == std::vector<std::string>{"c3"});
    CHECK(m.connections_of("nobody").empty());
    CHECK(m.player_of("c3") == "p2");
    CHECK(m.player_of("nope").empty());

    // A second add of the same id is ignored, whatever it claims.
    auto impostor = fake_connection::make("c1");
    m.add(impostor, info_for("p9"));
    m.add(nullptr, info_for("p9"));
    CHECK(m.size() == 3);
    CHECK(m.player_of("c1") == "p1");
    CHECK(m.connections_of("p9").empty());
    CHECK(m.send("c1", text_frame("x")) == send_status::queued);
    CHECK(c1->frame_count() == 1);
    CHECK(impostor->frame_count() == 0);

    m.remove("c1");
    m.remove("c1");
    m.remove("unknown");
    CHECK(m.size() == 2);
    CHECK(m.player_of("c1").empty());
    CHECK(m.connections_of("p1") == std::vector<std::string>{"c2"});
    CHECK_FALSE(c1->closed());  // remove() forgets, it does not close
    CHECK(m.send("c1", text_frame("x")) == send_status::closed);
    m.remove("c2");
    m.remove("c3");
    CHECK(m.size() == 0);
    CHECK(m.stats().connections == 0);
    CHECK(m.connections_of("p1").empty());
}

TEST_CASE("connection_manager: player updates reach every connection of the player",
          "[connection_manager]") {
    connection_manager m;
    auto c1 = add(m, "c1", "p1");
    auto c2 = add(m, "c2", "p1");
    auto c3 = add(m, "c3", "p2");

    const auto r = m.deliver(gatehouse::update_for_player("p1", "score", R"({"n":1})", "c-1"));
    CHECK(r.queued == 2);
    CHECK(r.dropped == 0);
    const json expected =
        json::parse(R"({"type":"score","payload":{"n":1},"correlation_id":"c-1"})");
    REQUIRE(received(*c1).size() == 1);
    CHECK(received(*c1)[0] == expected);  // no routing keys reach the client
    REQUIRE(received(*c2).size() == 1);
    CHECK(received(*c2)[0] == expected);
    CHECK(c3->frame_count() == 0);
    CHECK(c1->frames()[0].type == gatehouse::frame_type::text);

    // No correlation id: the key is absent.
    m.deliver(gatehouse::update_for_player("p2", "t", "null"));
    REQUIRE(received(*c3).size() == 1);
    CHECK(received(*c3)[0] == json::parse(R"({"type":"t","payload":null})"));

    // After a remove only the remaining connection gets it; with none, it is unrouted.
    m.remove("c1");
    CHECK(m.deliver(gatehouse::update_for_player("p1", "t", "2")).queued == 1);
    CHECK(c1->frame_count() == 1);
    CHECK(c2->frame_count() == 2);
    m.remove("c2");
    const auto none = m.deliver(gatehouse::update_for_player("p1", "t", "3"));
    CHECK(none.queued == 0);
    CHECK(none.dropped == 0);
    CHECK(m.deliver(gatehouse::update_for_player("ghost", "t", "3")).queued == 0);

    const auto s = m.stats();
    CHECK(s.updates_routed == 3);
    CHECK(s.updates_unrouted == 2);
    CHECK(s.frames_sent == 4);
}

TEST_CASE("connection_manager: updates for one player keep their order", "[connection_manager]") {
    connection_manager m;
    auto c1 = add(m, "c1", "p1");
    auto c2 = add(m, "c2", "p1", gatehouse::make_msgpack_codec());
    for (int i = 0; i < 200; ++i) {
        m.deliver(gatehouse::update_for_player("p1", "seq", std::to_string(i)));
    }
    const auto texts = received(*c1);
    REQUIRE(texts.size() == 200);
    for (int i = 0; i < 200; ++i) CHECK(texts[static_cast<std::size_t>(i)]["payload"] == i);
    const auto frames = c2->frames();
    REQUIRE(frames.size() == 200);
    for (int i = 0; i < 200; ++i) {
        gatehouse::envelope e;
        REQUIRE_FALSE(
            gatehouse::make_msgpack_codec()->decode(*frames[static_cast<std::size_t>(i)].bytes, e));
        CHECK(json::from_msgpack(e.payload) == i);
    }
}

TEST_CASE("connection_manager: a connection target hits that connection only",
          "[connection_manager]") {
    connection_manager m;
    auto c1 = add(m, "c1", "p1");
    auto c2 = add(m, "c2", "p1");
    auto c3 = add(m, "c3", "p2");

    const auto r = m.deliver(gatehouse::update_for_connection("p1", "c2", "t", "1"));
    CHECK(r.queued == 1);
    CHECK(c1->frame_count() == 0);
    CHECK(c2->frame_count() == 1);
    CHECK(c3->frame_count() == 0);
    CHECK(received(*c2)[0] == json::parse(R"({"type":"t","payload":1})"));

    // The connection exists but belongs to someone else: nothing is sent.
    CHECK(m.deliver(gatehouse::update_for_connection("p2", "c2", "t", "1")).queued == 0);
    CHECK(m.deliver(gatehouse::update_for_connection("p1", "c3", "t", "1")).queued == 0);
    CHECK(m.deliver(gatehouse::update_for_connection("p1", "nope", "t", "1")).queued == 0);
    CHECK(c2->frame_count() == 1);
    CHECK(c3->frame_count() == 0);
    CHECK(m.stats().updates_routed == 1);
    CHECK(m.stats().updates_unrouted == 3);
}

TEST_CASE("connection_manager: a players target reaches each listed player once",
          "[connection_manager]") {
    connection_manager m;
    auto c1 = add(m, "c1", "p1");
    auto c2 = add(m, "c2", "p1");
    auto c3 = add(m, "c3", "p2");
    auto c4 = add(m, "c4", "p3");

    const auto r = m.deliver(gatehouse::update_for_players({"p1", "p2", "ghost", "p1"}, "t", "1"));
    CHECK(r.queued == 3);
    CHECK(c1->frame_count() == 1);
    CHECK(c2->frame_count() == 1);
    CHECK(c3->frame_count() == 1);
    CHECK(c4->frame_count() == 0);
    CHECK(m.deliver(gatehouse::update_for_players({"ghost"}, "t", "1")).queued == 0);
}

TEST_CASE("connection_manager: rooms belong to players", "[connection_manager]") {
    connection_manager m;
    auto c1 = add(m, "c1", "p1");
    auto c3 = add(m, "c3", "p2");
    const auto before = m.stats();

    // Joining through deliver() counts as neither routed nor unrouted.
    CHECK(m.deliver(gatehouse::room_join("p1", "lobby")).queued == 0);
    CHECK(m.stats().updates_routed == before.updates_routed);
    CHECK(m.stats().updates_unrouted == before.updates_unrouted);
    CHECK(m.rooms_of("p1") == std::vector<std::string>{"lobby"});
    CHECK(m.join("p1", "arena"));
    CHECK(m.rooms_of("p1") == std::vector<std::string>{"arena", "lobby"});  // sorted

    // A connection opened after the join is covered.
    auto c2 = add(m, "c2", "p1");
    auto r = m.deliver(gatehouse::update_for_room("lobby", "chat", R"({"m":"hi"})"));
    CHECK(r.queued == 2);
    CHECK(c1->frame_count() == 1);
    CHECK(c2->frame_count() == 1);
    CHECK(c3->frame_count() == 0);
    CHECK(received(*c2)[0] == json::parse(R"({"type":"chat","payload":{"m":"hi"}})"));

    CHECK(m.join("p2", "lobby"));
    CHECK(m.deliver(gatehouse::update_for_room("lobby", "t", "1")).queued == 3);
    CHECK(m.deliver(gatehouse::update_for_room("empty", "t", "1")).queued == 0);

    // Leave.
    m.deliver(gatehouse::room_leave("p2", "lobby"));
    CHECK(m.rooms_of("p2").empty());
    CHECK(m.deliver(gatehouse::update_for_room("lobby", "t", "1")).queued == 2);
    CHECK(c3->frame_count() == 1);
    CHECK(m.leave("p2", "never-joined"));
    CHECK_FALSE(m.leave("ghost", "lobby"));

    // Membership survives while one connection remains and ends with the last one.
    m.remove("c1");
    CHECK(m.rooms_of("p1") == std::vector<std::string>{"arena", "lobby"});
    CHECK(m.deliver(gatehouse::update_for_room("lobby", "t", "1")).queued == 1);
    m.remove("c2");
    CHECK(m.rooms_of("p1").empty());
    auto c4 = add(m, "c4", "p1");
    CHECK(m.rooms_of("p1").empty());
    CHECK(m.deliver(gatehouse::update_for_room("lobby", "t", "1")).queued == 0);
    CHECK(m.deliver(gatehouse::update_for_room("arena", "t", "1")).queued == 0);
    CHECK(c4->frame_count() == 0);
}

TEST_CASE("connection_manager: join or leave for a player not connected here is ignored",
          "[connection_manager]") {
    connection_manager m;
    auto c1 = add(m, "c1", "p1");
    CHECK_FALSE(m.join("ghost", "lobby"));
    m.deliver(gatehouse::room_join("ghost", "lobby"));
    CHECK(m.rooms_of("ghost").empty());
    CHECK_FALSE(m.join("p1", ""));
    CHECK(m.rooms_of("p1").empty());
    // The ghost connecting later is not in the room.
    auto g = add(m, "g", "ghost");
    CHECK(m.deliver(gatehouse::update_for_room("lobby", "t", "1")).queued == 0);
    CHECK(g->frame_count() == 0);
    const auto s = m.stats();
    CHECK(s.updates_routed == 0);
    CHECK(s.updates_unrouted == 1);
}

TEST_CASE("connection_manager: broadcast reaches every connection", "[connection_manager]") {
    connection_manager_options options;
    options.shards = 3;  // rounded up to 4
    connection_manager m(options);
    std::vector<std::shared_ptr<fake_connection>> all;
    for (int p = 0; p < 40; ++p) {
        for (int k = 0; k < 2; ++k) {
            all.push_back(
                add(m, "c" + std::to_string(p) + "-" + std::to_string(k), "p" + std::to_string(p)));
        }
    }
    const auto r = m.deliver(gatehouse::update_for_everyone("tick", "[1]"));
    CHECK(r.queued == 80);
    for (const auto& c : all) {
        REQUIRE(c->frame_count() == 1);
        CHECK(received(*c)[0] == json::parse(R"({"type":"tick","payload":[1]})"));
    }

    // An empty manager: nothing to reach.
    connection_manager empty;
    CHECK(empty.deliver(gatehouse::update_for_everyone("tick", "1")).queued == 0);
    CHECK(empty.stats().updates_unrouted == 1);
}

TEST_CASE("connection_manager: one encode per codec, one buffer shared", "[connection_manager]") {
    auto json_codec = std::make_shared<counting_codec>(gatehouse::make_json_codec());
    auto msgpack_codec = std::make_shared<counting_codec>(gatehouse::make_msgpack_codec());
    connection_manager m;
    std::vector<std::shared_ptr<fake_connection>> json_conns;
    std::vector<std::shared_ptr<fake_connection>> msgpack_conns;
    for (int i = 0; i < 5; ++i) {
        json_conns.push_back(add(m, "j" + std::to_string(i), "p" + std::to_string(i), json_codec));
        msgpack_conns.push_back(
            add(m, "m" + std::to_string(i), "p" + std::to_string(i), msgpack_codec));
    }

    const auto r = m.deliver(gatehouse::update_for_everyone("tick", R"({"n":[1,2]})", "c-9"));
    CHECK(r.queued == 10);
    CHECK(json_codec->encodes() == 1);
    CHECK(msgpack_codec->encodes() == 1);

    const auto first_json = json_conns[0]->frames().at(0);
    const auto first_msgpack = msgpack_conns[0]->frames().at(0);
    CHECK(first_json.type == gatehouse::frame_type::text);
    CHECK(first_msgpack.type == gatehouse::frame_type::binary);
    for (const auto& c : json_conns) CHECK(c->frames().at(0).bytes == first_json.bytes);
    for (const auto& c : msgpack_conns) CHECK(c->frames().at(0).bytes == first_msgpack.bytes);

    gatehouse::envelope e;
    REQUIRE_FALSE(gatehouse::make_msgpack_codec()->decode(*first_msgpack.bytes, e));
    CHECK(e.type == "tick");
    CHECK(e.correlation_id == "c-9");
    CHECK(json::from_msgpack(e.payload) == json::parse(R"({"n":[1,2]})"));

    // A room of players on both codecs: again one encode each.
    for (int i = 0; i < 5; ++i) CHECK(m.join("p" + std::to_string(i), "r"));
    CHECK(m.deliver(gatehouse::update_for_room("r", "t", "1")).queued == 10);
    CHECK(json_codec->encodes() == 2);
    CHECK(msgpack_codec->encodes() == 2);

    // Only codecs in use among the targets are asked.
    CHECK(m.deliver(gatehouse::update_for_connection("p0", "j0", "t", "1")).queued == 1);
    CHECK(json_codec->encodes() == 3);
    CHECK(msgpack_codec->encodes() == 2);
    CHECK(m.deliver(gatehouse::update_for_player("ghost", "t", "1")).queued == 0);
    CHECK(json_codec->encodes() == 3);
}

TEST_CASE("connection_manager: slow consumers, policy drop", "[connection_manager]") {
    connection_manager_options options;
    options.max_buffered_bytes = 1000;
    options.slow_consumer = slow_consumer_policy::drop;
    connection_manager m(options);
    auto slow = add(m, "slow", "p1");
    auto fast = add(m, "fast", "p1");

    const auto frame = text_frame(std::string(100, 'x'));
    // At the limit is still allowed; one byte over is not.
    slow->set_buffered_bytes(900);
    CHECK(m.send("slow", frame) == send_status::queued);
    slow->set_buffered_bytes(901);
    CHECK(m.send("slow", frame) == send_status::dropped);
    CHECK(slow->frame_count() == 1);
    CHECK_FALSE(slow->closed());

    slow->set_buffered_bytes(990);  // the update's ~24-byte frame would pass 1000
    const auto r = m.deliver(gatehouse::update_for_player("p1", "t", "1"));
    CHECK(r.queued == 1);
    CHECK(r.dropped == 1);
    CHECK(slow->frame_count() == 1);
    CHECK(fast->frame_count() == 1);
    auto s = m.stats();
    CHECK(s.frames_dropped == 2);
    CHECK(s.slow_consumers_closed == 0);
    CHECK(s.updates_routed == 1);

    // Once it catches up it gets frames again.
    slow->set_buffered_bytes(0);
    CHECK(m.deliver(gatehouse::update_for_player("p1", "t", "1")).queued == 2);
    CHECK(slow->frame_count() == 2);

    // A frame bigger than the whole limit never fits.
    CHECK(m.send("fast", text_frame(std::string(1001, 'y'))) == send_status::dropped);
    CHECK(m.stats().frames_dropped == 3);

    // A client that never reads fills up and is then dropped, never grown without bound.
    fast->accumulate_buffered(true);
    int queued = 0;
    for (int i = 0; i < 50; ++i) {
        if (m.send("fast", frame) == send_status::queued) ++queued;
    }
    CHECK(queued == 10);
    CHECK(fast->buffered_bytes() <= 1000);
}

TEST_CASE("connection_manager: slow consumers, policy close", "[connection_manager]") {
    connection_manager_options options;
    options.max_buffered_bytes = 1000;
    options.slow_consumer = slow_consumer_policy::close;
    connection_manager m(options);
    auto slow = add(m, "slow", "p1");
    auto fast = add(m, "fast", "p1");

    slow->set_buffered_bytes(1000);
    const auto r = m.deliver(gatehouse::update_for_player("p1", "t", "1"));
    CHECK(r.queued == 1);
    CHECK(r.dropped == 1);
    REQUIRE(slow->close_calls().size() == 1);
    CHECK(slow->close_calls()[0].code == close_code::policy_violation);
    CHECK(slow->close_calls()[0].reason == "slow consumer");
    CHECK(slow->frame_count() == 0);
    CHECK(m.stats().slow_consumers_closed == 1);

    // Closed once and counted once, even if its buffer drains before remove() arrives.
    CHECK(m.deliver(gatehouse::update_for_player("p1", "t", "2")).dropped == 1);
    slow->set_buffered_bytes(0);
    CHECK(m.send("slow", text_frame("x")) == send_status::closed);
    CHECK(slow->close_calls().size() == 1);
    CHECK(slow->frame_count() == 0);
    CHECK(m.stats().slow_consumers_closed == 1);
    CHECK(m.stats().frames_dropped == 0);
    CHECK(fast->frame_count() == 2);
    CHECK_FALSE(fast->closed());
    CHECK(m.size() == 2);  // the transport's close handler removes it, not the manager
}

TEST_CASE("connection_manager: an update larger than the send buffer is refused, not a close",
          "[connection_manager]") {
    for (const auto policy : {slow_consumer_policy::close, slow_consumer_policy::drop}) {
        connection_manager_options options;
        options.max_buffered_bytes = 1000;
        options.slow_consumer = policy;
        connection_manager m(options);
        auto a = add(m, "a", "p1");
        auto b = add(m, "b", "p1", gatehouse::make_msgpack_codec());
        const std::string big = "\"" + std::string(2000, 'x') + "\"";
        const auto r = m.deliver(gatehouse::update_for_player("p1", "t", big));
        CHECK(r.queued == 0);
        CHECK(r.dropped == 0);
        CHECK(r.oversized == 2);
        CHECK(r.oversized_frame_bytes > 2000);
        CHECK(a->frame_count() == 0);
        CHECK(b->frame_count() == 0);
        CHECK_FALSE(a->closed());
        CHECK_FALSE(b->closed());
        auto s = m.stats();
        CHECK(s.updates_oversized == 1);
        CHECK(s.updates_unrouted == 0);
        CHECK(s.slow_consumers_closed == 0);
        CHECK(s.frames_dropped == 0);

        // Later updates flow as before.
        CHECK(m.deliver(gatehouse::update_for_player("p1", "t", "1")).queued == 2);
        CHECK(a->frame_count() == 1);
        CHECK(b->frame_count() == 1);
        s = m.stats();
        CHECK(s.updates_oversized == 1);
        CHECK(s.slow_consumers_closed == 0);
    }
}

TEST_CASE("connection_manager: connections that refuse frames", "[connection_manager]") {
    connection_manager m;
    auto c1 = add(m, "c1", "p1");
    auto c2 = add(m, "c2", "p1");
    c1->refuse_sends();
    c2->close(close_code::normal, "bye");
    const auto before = m.stats().frames_sent;
    const auto r = m.deliver(gatehouse::update_for_player("p1", "t", "1"));
    CHECK(r.queued == 0);
    CHECK(r.dropped == 2);
    CHECK(m.send("c1", text_frame("x")) == send_status::closed);
    CHECK(m.stats().frames_sent == before);
    CHECK(m.stats().updates_unrouted == 1);
    CHECK(c1->send_calls() == 2);  // the manager did ask
}

TEST_CASE("connection_manager: a codec that fails to encode", "[connection_manager]") {
    connection_manager m;
    auto bad = add(m, "bad", "p1", std::make_shared<failing_codec>(false));
    auto bad2 = add(m, "bad2", "p2", std::make_shared<failing_codec>(true));
    auto good = add(m, "good", "p1");
    auto none = add(m, "none", "p3", nullptr);

    const auto r = m.deliver(gatehouse::update_for_everyone("t", "1"));
    CHECK(r.queued == 1);
    CHECK(r.dropped == 3);
    CHECK(bad->send_calls() == 0);
    CHECK(bad2->send_calls() == 0);
    CHECK(none->send_calls() == 0);
    CHECK(good->frame_count() == 1);
    CHECK(m.stats().encode_failures == 3);
    CHECK(m.stats().updates_routed == 1);

    // Nothing encodable: unrouted.
    CHECK(m.deliver(gatehouse::update_for_player("p2", "t", "1")).dropped == 1);
    CHECK(m.stats().encode_failures == 4);
    CHECK(m.stats().updates_unrouted == 1);

    // A payload the JSON codec cannot carry is an encode failure too.
    update opaque = gatehouse::update_for_player("p1", "t", "raw");
    opaque.message.format = gatehouse::payload_format::bytes;
    CHECK(m.deliver(opaque).queued == 0);
    CHECK(good->frame_count() == 1);
}

TEST_CASE("connection_manager: close_all closes and keeps everything registered",
          "[connection_manager]") {
    connection_manager m;
    auto c1 = add(m, "c1", "p1");
    auto c2 = add(m, "c2", "p2");
    m.close_all(close_code::going_away, "shutdown");
    for (const auto& c : {c1, c2}) {
        REQUIRE(c->close_calls().size() == 1);
        CHECK(c->close_calls()[0].code == close_code::going_away);
        CHECK(c->close_calls()[0].reason == "shutdown");
    }
    CHECK(m.size() == 2);
    CHECK(m.deliver(gatehouse::update_for_player("p1", "t", "1")).queued == 0);
}

TEST_CASE("connection_manager: concurrent add, remove, deliver, join", "[connection_manager]") {
    connection_manager_options options;
    options.shards = 4;
    options.max_buffered_bytes = 1u << 30;
    connection_manager m(options);
    constexpr int threads = 4;
    constexpr int ops = 2000;
    const auto json_codec = gatehouse::make_json_codec();
    const auto msgpack_codec = gatehouse::make_msgpack_codec();

    // Each thread also owns one player nobody else sends to, to check per-player order.
    std::vector<std::shared_ptr<fake_connection>> own(threads);
    for (int t = 0; t < threads; ++t) {
        own[static_cast<std::size_t>(t)] =
            add(m, "own" + std::to_string(t), "own-player" + std::to_string(t));
    }

    std::vector<std::vector<std::shared_ptr<fake_connection>>> created(threads);
    std::vector<std::vector<std::string>> live(threads);
    std::vector<int> own_sent(threads, 0);
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            const auto ti = static_cast<std::size_t>(t);
            std::mt19937 rng(static_cast<unsigned>(1234 + t));
            const auto player = [&] { return "p" + std::to_string(rng() % 8); };
            for (int i = 0; i < ops; ++i) {
                // Adds and removes balance, so few connections are live at once and broadcasts stay
                // cheap.
                switch (rng() % 11) {
                    case 0:
                    case 1: {
                        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
                        auto c = fake_connection::make(id);
                        m.add(c, info_for(player(), rng() % 2 ? json_codec : msgpack_codec));
                        created[ti].push_back(c);
                        live[ti].push_back(id);
                        break;
                    }
                    case 2:
                    case 10:
                        if (!live[ti].empty()) {
                            const std::size_t k = rng() % live[ti].size();
                            m.remove(live[ti][k]);
                            live[ti].erase(live[ti].begin() + static_cast<std::ptrdiff_t>(k));
                        }
                        break;
                    case 3: m.deliver(gatehouse::update_for_player(player(), "t", "1")); break;
                    case 4: m.deliver(gatehouse::update_for_room("r", "t", "2")); break;
                    case 5: m.deliver(gatehouse::update_for_everyone("t", "3")); break;
                    case 6: m.join(player(), "r"); break;
                    case 7: m.deliver(gatehouse::room_leave(player(), "r")); break;
                    case 8:
                        m.deliver(gatehouse::update_for_players({player(), player()}, "t", "4"));
                        break;
                    default:
                        m.deliver(gatehouse::update_for_player("own-player" + std::to_string(t),
                                                               "seq",
                                                               std::to_string(own_sent[ti]++)));
                        break;
                }
            }
        });
    }
    for (auto& th : pool) th.join();
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(30));

    // Registration is consistent with what the threads did.
    std::size_t expected_live = threads;
    std::uint64_t frames_received = 0;
    for (int t = 0; t < threads; ++t) {
        const auto ti = static_cast<std::size_t>(t);
        expected_live += live[ti].size();
        for (const auto& id : live[ti]) CHECK_FALSE(m.player_of(id).empty());
        for (const auto& c : created[ti]) frames_received += c->frame_count();
        frames_received += own[ti]->frame_count();
    }
    CHECK(m.size() == expected_live);
    CHECK(m.stats().connections == expected_live);
    // Every frame counted as sent arrived somewhere, and no other.
    CHECK(m.stats().frames_sent == frames_received);
    // Players with no connection left are in no room.
    for (int p = 0; p < 8; ++p) {
        const std::string player = "p" + std::to_string(p);
        if (m.connections_of(player).empty()) CHECK(m.rooms_of(player).empty());
    }
    // Each thread's own player got its updates in order, between everyone else's broadcasts.
    for (int t = 0; t < threads; ++t) {
        const auto ti = static_cast<std::size_t>(t);
        int next = 0;
        for (const auto& msg : received(*own[ti])) {
            if (msg["type"] != "seq") continue;
            CHECK(msg["payload"] == next);
            ++next;
        }
        CHECK(next == own_sent[ti]);
    }
}

namespace {

update with_class(update u, gatehouse::delivery_class d, std::string key = {}) {
    u.delivery = d;
    u.key = std::move(key);
    return u;
}

}  // namespace

TEST_CASE("connection_manager: delivery classes past the send buffer (docs/protocol.md 6.6)",
          "[connection_manager]") {
    using gatehouse::delivery_class;
    for (const auto policy :
         {slow_consumer_policy::queue, slow_consumer_policy::close, slow_consumer_policy::drop}) {
        INFO("policy " << static_cast<int>(policy));
        connection_manager_options options;
        options.max_buffered_bytes = 1000;
        options.slow_consumer = policy;
        connection_manager m(options);
        auto slow = add(m, "slow", "p1");
        auto fast = add(m, "fast", "p1");
        const auto droppable =
            with_class(gatehouse::update_for_player("p1", "t", "1"), delivery_class::droppable);
        const auto latest = [](const std::string& key, int v) {
            return with_class(gatehouse::update_for_player("p1", "t", std::to_string(v)),
                              delivery_class::latest, key);
        };

        // Under the bound every class is queued; latest frames carry their key all the same,
        // so that a later one can replace them.
        CHECK(m.deliver(droppable).queued == 2);
        CHECK(m.deliver(latest("pos", 1)).queued == 2);
        CHECK(slow->keys() == std::vector<std::string>{"", "pos"});

        // Past it: droppable is dropped (the connection stays open), whatever the policy.
        slow->set_buffered_bytes(990);
        auto r = m.deliver(droppable);
        CHECK(r.queued == 1);
        CHECK(r.dropped == 1);
        CHECK_FALSE(slow->closed());
        // latest replaces the queued update of the same key; a new key is queued.
        r = m.deliver(latest("pos", 2));
        CHECK(r.queued == 2);
        CHECK(r.coalesced == 1);
        CHECK(m.deliver(latest("hp", 3)).coalesced == 0);
        CHECK(slow->texts().size() == 3);
        CHECK(slow->texts()[1] == R"({"type":"t","payload":2})");
        CHECK(slow->keys() == std::vector<std::string>{"", "pos", "hp"});
        CHECK_FALSE(slow->closed());

        auto s = m.stats();
        CHECK(s.droppable.sent == 3);
        CHECK(s.droppable.dropped == 1);
        CHECK(s.latest.sent == 5);
        CHECK(s.latest.coalesced == 1);
        CHECK(s.frames_dropped == 1);
        CHECK(s.frames_sent == 3 + 5 + 1);
        CHECK(s.slow_consumers_closed == 0);

        // Near twice the bound: a latest update that replaces a queued one of its own size adds
        // no byte, so it is coalesced, as the transport's enqueue_keyed would (the drop policy
        // drops whatever might pass the bound, without asking the connection).
        slow->accumulate_buffered(true);
        slow->set_buffered_bytes(1990);
        r = m.deliver(latest("pos", 4));
        if (policy == slow_consumer_policy::drop) {
            CHECK(r.queued == 1);
            CHECK(m.stats().latest.dropped == 1);
        } else {
            CHECK(r.queued == 2);
            CHECK(r.coalesced == 1);
            CHECK(slow->texts().back() == R"({"type":"t","payload":4})");
            CHECK(slow->buffered_bytes() == 1990);
        }
        CHECK_FALSE(slow->closed());
        // A new key would take it past twice the bound: 4008 (the drop policy drops it).
        r = m.deliver(latest("mp", 5));
        CHECK(r.queued == 1);
        if (policy == slow_consumer_policy::drop) {
            CHECK_FALSE(slow->closed());
            CHECK(m.stats().latest.dropped == 2);
        } else {
            REQUIRE(slow->close_calls().size() == 1);
            CHECK(slow->close_calls()[0].code == close_code::slow_consumer);
            CHECK(slow->close_calls()[0].reason == "slow consumer");
            CHECK(m.stats().latest.closed == 1);
            CHECK(m.stats().slow_consumers_closed == 1);
        }
        CHECK_FALSE(fast->closed());
    }
}

TEST_CASE(
    "connection_manager: a latest update replacing a queued one of its size never closes "
    "(docs/protocol.md 6.6)",
    "[connection_manager]") {
    using gatehouse::delivery_class;
    for (const auto policy : {slow_consumer_policy::queue, slow_consumer_policy::close}) {
        INFO("policy " << static_cast<int>(policy));
        connection_manager_options options;
        options.max_buffered_bytes = 1000;
        options.slow_consumer = policy;
        connection_manager m(options);
        auto c = add(m, "c", "p1");
        c->accumulate_buffered(true);
        // `{"type":"t","payload":"..."}`: 25 bytes around the payload's text.
        const auto k = [](char fill) {
            return with_class(
                gatehouse::update_for_player("p1", "t", "\"" + std::string(145, fill) + "\""),
                delivery_class::latest, "k");
        };
        REQUIRE(m.deliver(k('a')).queued == 1);
        REQUIRE(c->buffered_bytes() == 170);
        // 1842 bytes unsent, the 170 of k among them: a new k of 170 leaves them at 1842.
        c->set_buffered_bytes(1842);
        const auto r = m.deliver(k('b'));
        CHECK(r.queued == 1);
        CHECK(r.coalesced == 1);
        CHECK_FALSE(c->closed());
        CHECK(c->buffered_bytes() == 1842);
        REQUIRE(c->frame_count() == 1);
        CHECK(c->texts()[0].find("bbb") != std::string::npos);
        CHECK(m.stats().slow_consumers_closed == 0);
    }
}

TEST_CASE(
    "connection_manager: reliable updates under the queue policy close with 4008 only "
    "past twice the send buffer",
    "[connection_manager]") {
    connection_manager_options options;
    options.max_buffered_bytes = 1000;
    options.slow_consumer = slow_consumer_policy::queue;
    connection_manager m(options);
    auto slow = add(m, "slow", "p1");

    const auto frame = text_frame(std::string(100, 'x'));
    slow->set_buffered_bytes(1500);  // past the soft bound: still queued
    CHECK(m.send("slow", frame) == send_status::queued);
    slow->set_buffered_bytes(1900);  // exactly at the hard bound: still queued
    CHECK(m.send("slow", frame) == send_status::queued);
    CHECK_FALSE(slow->closed());
    slow->set_buffered_bytes(1901);
    CHECK(m.send("slow", frame) == send_status::closed);
    REQUIRE(slow->close_calls().size() == 1);
    CHECK(slow->close_calls()[0].code == close_code::slow_consumer);
    CHECK(m.deliver(gatehouse::update_for_player("p1", "t", "1")).dropped == 1);
    CHECK(slow->close_calls().size() == 1);  // once
    const auto s = m.stats();
    CHECK(s.slow_consumers_closed == 1);
    CHECK(s.reliable.sent == 2);
    CHECK(s.reliable.closed == 2);
    CHECK(s.frames_dropped == 0);

    // A client that never reads is bounded by twice the send buffer.
    auto never = add(m, "never", "p2");
    never->accumulate_buffered(true);
    for (int i = 0; i < 100; ++i) m.send("never", frame);
    CHECK(never->buffered_bytes() <= 2000);
    CHECK(never->frame_count() == 20);
    CHECK(never->closed());
}

TEST_CASE("connection_manager: latest updates to a client that never reads stay bounded",
          "[connection_manager]") {
    using gatehouse::delivery_class;
    connection_manager_options options;
    options.max_buffered_bytes = 1000;
    options.slow_consumer = slow_consumer_policy::queue;
    connection_manager m(options);
    auto never = add(m, "never", "p1");
    never->accumulate_buffered(true);
    for (int i = 0; i < 500; ++i) {
        const auto key = "k" + std::to_string(i % 3);
        // Fixed width, so that every value of a key has the same size.
        const auto payload = "[" + std::to_string(1000 + i) + ",\"" + std::string(40, 'x') + "\"]";
        m.deliver(with_class(gatehouse::update_for_player("p1", "pos", payload),
                             delivery_class::latest, key));
    }
    CHECK_FALSE(never->closed());
    CHECK(never->buffered_bytes() <= 1000);
    // The last value of each key is queued, once, after whatever was queued under the bound.
    const auto keys = never->keys();
    const auto texts = never->texts();
    for (const char* key : {"k0", "k1", "k2"}) {
        CHECK(std::count(keys.begin(), keys.end(), key) >= 1);
    }
    REQUIRE(texts.size() >= 3);
    CHECK(texts[texts.size() - 3].find("[1497,") != std::string::npos);
    CHECK(texts[texts.size() - 2].find("[1498,") != std::string::npos);
    CHECK(texts[texts.size() - 1].find("[1499,") != std::string::npos);
    const auto s = m.stats();
    CHECK(s.latest.sent + s.latest.coalesced == 500);
    CHECK(s.latest.coalesced > 400);
}

TEST_CASE("connection_manager: a connection without send_keyed gets latest updates as plain sends",
          "[connection_manager]") {
    // An embedder's connection written before delivery classes: the interface's default.
    class plain final : public gatehouse::connection {
    public:
        const gatehouse::connection_id& id() const noexcept override { return id_; }
        send_status send(const gatehouse::shared_frame&) override {
            ++sends;
            return send_status::queued;
        }
        std::size_t buffered_bytes() const noexcept override { return 0; }
        void close(close_code, std::string_view) override {}
        int sends = 0;

    private:
        gatehouse::connection_id id_ = "plain";
    };
    connection_manager m;
    auto c = std::make_shared<plain>();
    m.add(c, info_for("p1"));
    auto u = gatehouse::update_for_player("p1", "t", "1");
    u.delivery = gatehouse::delivery_class::latest;
    u.key = "k";
    CHECK(m.deliver(u).queued == 1);
    CHECK(c->sends == 1);
}
