#include "redis/connection.hpp"
#include "redis/url.hpp"

#include <catch2/catch.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "redis_server_fixture.hpp"

namespace r = gatehouse::detail::redis;
using gatehouse_test::redis_server;
using namespace std::chrono_literals;

namespace {

// Runs the io_context on this thread until `done()` holds or `limit` passes.
template <typename Pred>
bool run_until(asio::io_context& io, Pred done, std::chrono::milliseconds limit = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        io.restart();
        io.run_for(10ms);
    }
    return done();
}

r::url must_parse(const std::string& text) {
    r::url u;
    auto ec = r::parse_url(text, u);
    INFO(text);
    REQUIRE_FALSE(ec);
    return u;
}

// Connects and waits; returns the connect result.
std::error_code connect(asio::io_context& io, const std::shared_ptr<r::connection>& c) {
    bool finished = false;
    std::error_code result = asio::error::timed_out;
    c->connect([&](std::error_code ec) {
        finished = true;
        result = ec;
    });
    run_until(io, [&] { return finished; });
    return result;
}

// Sends one command and waits for its reply.
std::pair<std::error_code, r::reply> call(asio::io_context& io,
                                          const std::shared_ptr<r::connection>& c,
                                          std::vector<std::string> argv) {
    bool finished = false;
    std::pair<std::error_code, r::reply> out{asio::error::timed_out, r::reply{}};
    c->command(std::move(argv), [&](std::error_code ec, r::reply rep) {
        finished = true;
        out = {ec, std::move(rep)};
    });
    run_until(io, [&] { return finished; });
    return out;
}

std::shared_ptr<r::connection> connected(asio::io_context& io, const std::string& text) {
    auto c = std::make_shared<r::connection>(io, must_parse(text));
    auto ec = connect(io, c);
    INFO(ec.message());
    REQUIRE_FALSE(ec);
    REQUIRE(c->connected());
    return c;
}

}  // namespace

TEST_CASE("redis url: accepted forms", "[redis]") {
    r::url u = must_parse("redis://127.0.0.1");
    CHECK(u.host == "127.0.0.1");
    CHECK(u.port == 6379);
    CHECK(u.user.empty());
    CHECK(u.password.empty());
    CHECK(u.db == 0);

    u = must_parse("redis://alice:s3cret@redis.local:6380/3");
    CHECK(u.host == "redis.local");
    CHECK(u.port == 6380);
    CHECK(u.user == "alice");
    CHECK(u.password == "s3cret");
    CHECK(u.db == 3);

    u = must_parse("redis://:only-pass@host");
    CHECK(u.user.empty());
    CHECK(u.password == "only-pass");
    CHECK(u.port == 6379);

    u = must_parse("redis://b%40b:p%3Aw%2F%25d@h:1/15");
    CHECK(u.user == "b@b");
    CHECK(u.password == "p:w/%d");
    CHECK(u.port == 1);
    CHECK(u.db == 15);

    u = must_parse("redis://[::1]:7000/0");
    CHECK(u.host == "::1");
    CHECK(u.port == 7000);
    u = must_parse("redis://[::1]");
    CHECK(u.host == "::1");
    CHECK(u.port == 6379);
    u = must_parse("redis://host:65535/");
    CHECK(u.port == 65535);
    CHECK(u.db == 0);
}

TEST_CASE("redis url: rejected forms leave the output alone", "[redis]") {
    const char* bad[] = {
        "",
        "redis://",
        "http://host:6379",
        "rediss://host",
        "redis:/host",
        "redis://host:",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:12a",
        "redis://host:-1",
        "redis://host/16",
        "redis://host/123",
        "redis://host/x",
        "redis://host/1/2",
        "redis://host/-1",
        "redis://host?db=1",
        "redis://user@host",
        "redis://user:@host",
        "redis://:@host",
        "redis://:p%zzw@host",
        "redis://:p%4@host",
        "redis://[::1",
        "redis://[::1]x",
        "redis://[::1]:",
        "redis://[]:1",
        "redis://[zz]:1",
        "redis://a:b:c",
        "redis://ho st",
        "redis://:pw@",
    };
    for (const char* text : bad) {
        r::url u;
        u.host = "untouched";
        auto ec = r::parse_url(text, u);
        INFO(text);
        CHECK(ec == std::make_error_code(std::errc::invalid_argument));
        CHECK(u.host == "untouched");
    }
}

TEST_CASE("redis connection: connect, PING and binary-safe arguments", "[redis]") {
    redis_server server;
    asio::io_context io;
    auto c = connected(io, server.url());

    auto [ec, pong] = call(io, c, {"PING"});
    REQUIRE_FALSE(ec);
    CHECK(pong.kind == r::reply_kind::status);
    CHECK(pong.str == "PONG");

    std::string binary("a\0b\r\n$3\r\n", 10);
    auto [ec2, echo] = call(io, c, {"ECHO", binary});
    REQUIRE_FALSE(ec2);
    CHECK(echo.kind == r::reply_kind::string);
    CHECK(echo.str == binary);

    auto [ec3, missing] = call(io, c, {"GET", "no-such-key"});
    REQUIRE_FALSE(ec3);
    CHECK(missing.kind == r::reply_kind::nil);

    // A Redis error reply is a reply, not an error code, and the FIFO carries on after it.
    auto [ec4, err] = call(io, c, {"NOSUCHCOMMAND", "x"});
    REQUIRE_FALSE(ec4);
    CHECK(err.is_error());
    CHECK(err.str.find("ERR") == 0);
    auto [ec5, pong2] = call(io, c, {"PING", "again"});
    REQUIRE_FALSE(ec5);
    CHECK(pong2.str == "again");

    auto [ec6, empty] = call(io, c, {});
    CHECK(ec6 == std::make_error_code(std::errc::invalid_argument));

    c->close();
    run_until(io, [&] { return !c->connected(); });
    auto [ec7, after] = call(io, c, {"PING"});
    CHECK(ec7 == asio::error::not_connected);
}

TEST_CASE("redis connection: a host name is resolved asynchronously", "[redis]") {
    redis_server server;
    asio::io_context io;
    auto c = connected(io, "redis://localhost:" + std::to_string(server.port()));
    auto [ec, pong] = call(io, c, {"PING"});
    REQUIRE_FALSE(ec);
    CHECK(pong.str == "PONG");
    c->close();
}

TEST_CASE("redis connection: connecting to nothing fails once", "[redis]") {
    std::uint16_t port = 0;
    {
        redis_server server;
        port = server.port();
    }
    asio::io_context io;
    auto c = std::make_shared<r::connection>(
        io, must_parse("redis://127.0.0.1:" + std::to_string(port)));
    int calls = 0;
    std::error_code result;
    c->connect([&](std::error_code ec) {
        ++calls;
        result = ec;
    });
    run_until(io, [&] { return calls > 0; });
    run_until(
        io, [] { return false; }, 100ms);
    CHECK(calls == 1);
    CHECK(result == asio::error::connection_refused);
    CHECK_FALSE(c->connected());
}

TEST_CASE("redis connection: 1000 pipelined INCRs answer in order, in few writes", "[redis]") {
    redis_server server;
    asio::io_context io;
    auto c = connected(io, server.url());
    std::size_t writes_before = c->write_count();

    std::vector<std::int64_t> got;
    std::size_t errors = 0;
    for (int i = 0; i < 1000; ++i) {
        c->command({"INCR", "counter"}, [&](std::error_code ec, r::reply rep) {
            if (ec || rep.kind != r::reply_kind::integer) ++errors;
            got.push_back(rep.integer);
        });
    }
    REQUIRE(run_until(io, [&] { return got.size() == 1000; }));
    CHECK(errors == 0);
    bool in_order = true;
    for (std::size_t i = 0; i < got.size(); ++i)
        if (got[i] != static_cast<std::int64_t>(i + 1)) in_order = false;
    CHECK(in_order);
    // Queued in one go, they leave in a handful of writes, not one per command.
    CHECK(c->write_count() - writes_before <= 3);
    c->close();
}

TEST_CASE("redis connection: command() is thread-safe and keeps per-thread order", "[redis]") {
    redis_server server;
    asio::io_context io;
    auto c = connected(io, server.url());
    auto guard = asio::make_work_guard(io);
    io.restart();
    std::thread runner([&] { io.run_for(15s); });

    constexpr int threads = 4;
    constexpr int per_thread = 250;
    std::mutex m;
    std::vector<std::vector<std::int64_t>> seen(threads);
    std::atomic<int> done{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < threads; ++t) {
        callers.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                c->command({"INCR", "shared"}, [&, t](std::error_code ec, r::reply rep) {
                    if (ec) ++errors;
                    {
                        std::lock_guard<std::mutex> lock(m);
                        seen[static_cast<std::size_t>(t)].push_back(rep.integer);
                    }
                    ++done;
                });
            }
        });
    }
    for (auto& th : callers) th.join();
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (done.load() < threads * per_thread && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
    guard.reset();
    c->close();
    io.stop();
    runner.join();

    REQUIRE(done.load() == threads * per_thread);
    CHECK(errors.load() == 0);
    std::vector<bool> value_seen(threads * per_thread + 1, false);
    bool ordered = true;
    bool unique = true;
    for (auto& s : seen) {
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (i > 0 && s[i] <= s[i - 1]) ordered = false;
            auto v = static_cast<std::size_t>(s[i]);
            if (v < 1 || v >= value_seen.size() || value_seen[v])
                unique = false;
            else
                value_seen[v] = true;
        }
    }
    CHECK(ordered);
    CHECK(unique);
}

TEST_CASE("redis connection: AUTH with a password and with an ACL user", "[redis]") {
    redis_server server({"--requirepass", "s3cret"});
    asio::io_context io;

    SECTION("no password: the connect's PING is refused with NOAUTH, so connect fails") {
        auto c = std::make_shared<r::connection>(io, must_parse(server.url()));
        std::error_code connect_ec;
        std::string message;
        bool done = false;
        c->connect([&](std::error_code ec) {
            connect_ec = ec;
            message = c->last_error();
            done = true;
        });
        REQUIRE(run_until(io, [&] { return done; }));
        CHECK(connect_ec == std::errc::connection_refused);
        CHECK(message.find("NOAUTH") == 0);
        CHECK_FALSE(c->connected());
    }
    SECTION("right password") {
        auto c = connected(io, server.url(":s3cret@"));
        auto [ec, rep] = call(io, c, {"PING"});
        REQUIRE_FALSE(ec);
        CHECK(rep.str == "PONG");
        c->close();
    }
    SECTION("wrong password: connect fails clearly, and queued commands fail too") {
        auto c = std::make_shared<r::connection>(io, must_parse(server.url(":wrong@")));
        int connect_calls = 0;
        std::error_code connect_ec;
        std::string message;
        c->connect([&](std::error_code ec) {
            ++connect_calls;
            connect_ec = ec;
            message = c->last_error();
        });
        int command_calls = 0;
        std::error_code command_ec;
        c->command({"PING"}, [&](std::error_code ec, r::reply) {
            ++command_calls;
            command_ec = ec;
        });
        run_until(io, [&] { return connect_calls > 0 && command_calls > 0; });
        run_until(
            io, [] { return false; }, 100ms);
        CHECK(connect_calls == 1);
        CHECK(connect_ec == std::make_error_code(std::errc::permission_denied));
        CHECK(message.find("WRONGPASS") == 0);
        CHECK(command_calls == 1);
        CHECK(command_ec);
        CHECK_FALSE(c->connected());
    }
    SECTION("an ACL user") {
        auto admin = connected(io, server.url(":s3cret@"));
        auto [ec, rep] =
            call(io, admin, {"ACL", "SETUSER", "alice", "on", ">pw", "~*", "&*", "+@all"});
        REQUIRE_FALSE(ec);
        REQUIRE(rep.str == "OK");

        auto alice = connected(io, server.url("alice:pw@"));
        auto [ec2, who] = call(io, alice, {"ACL", "WHOAMI"});
        REQUIRE_FALSE(ec2);
        CHECK(who.str == "alice");

        auto impostor =
            std::make_shared<r::connection>(io, must_parse(server.url("alice:s3cret@")));
        CHECK(connect(io, impostor) == std::make_error_code(std::errc::permission_denied));
        admin->close();
        alice->close();
    }
}

TEST_CASE("redis connection: SELECT from the URL isolates databases", "[redis]") {
    redis_server server;
    asio::io_context io;
    auto db3 = connected(io, server.url("", "/3"));
    auto db0 = connected(io, server.url());

    CHECK(call(io, db3, {"SET", "k", "three"}).second.str == "OK");
    CHECK(call(io, db0, {"GET", "k"}).second.kind == r::reply_kind::nil);
    CHECK(call(io, db0, {"SET", "k", "zero"}).second.str == "OK");
    CHECK(call(io, db3, {"GET", "k"}).second.str == "three");
    CHECK(call(io, db0, {"GET", "k"}).second.str == "zero");
    auto [ec, info] = call(io, db3, {"CLIENT", "INFO"});
    REQUIRE_FALSE(ec);
    CHECK(info.str.find(" db=3 ") != std::string::npos);
    db3->close();
    db0->close();
}

TEST_CASE("redis connection: XADD returns an entry id", "[redis]") {
    redis_server server;
    asio::io_context io;
    auto c = connected(io, server.url());
    auto [ec, id] = call(io, c, {"XADD", "stream", "*", "type", "move", "payload", "{\"x\":1}"});
    REQUIRE_FALSE(ec);
    REQUIRE(id.kind == r::reply_kind::string);
    auto dash = id.str.find('-');
    REQUIRE(dash != std::string::npos);
    CHECK(dash > 0);
    CHECK(id.str.find_first_not_of("0123456789-") == std::string::npos);

    auto [ec2, range] = call(io, c, {"XRANGE", "stream", "-", "+"});
    REQUIRE_FALSE(ec2);
    REQUIRE(range.kind == r::reply_kind::array);
    REQUIRE(range.elements.size() == 1);
    CHECK(range.elements[0].elements[0].str == id.str);
    const auto& fields = range.elements[0].elements[1].elements;
    REQUIRE(fields.size() == 4);
    CHECK(fields[3].str == "{\"x\":1}");
    c->close();
}

TEST_CASE("redis connection: SUBSCRIBE delivers published messages in order", "[redis]") {
    redis_server server;
    asio::io_context io;
    auto sub = connected(io, server.url());
    auto pub = connected(io, server.url());

    std::vector<std::string> messages;
    std::vector<std::string> channels;
    sub->on_push([&](const r::reply& m) {
        if (m.kind == r::reply_kind::array && m.elements.size() == 3 &&
            m.elements[0].is_text("message")) {
            channels.push_back(m.elements[1].str);
            messages.push_back(m.elements[2].str);
        }
    });
    auto [ec, confirm] = call(io, sub, {"SUBSCRIBE", "updates", "other"});
    REQUIRE_FALSE(ec);
    REQUIRE(confirm.kind == r::reply_kind::array);
    REQUIRE(confirm.elements.size() == 3);
    CHECK(confirm.elements[0].str == "subscribe");
    CHECK(confirm.elements[1].str == "other");
    CHECK(confirm.elements[2].integer == 2);

    std::vector<std::int64_t> receivers;
    for (int i = 0; i < 100; ++i) {
        pub->command({"PUBLISH", "updates", "m" + std::to_string(i)},
                     [&](std::error_code, r::reply rep) { receivers.push_back(rep.integer); });
    }
    REQUIRE(run_until(io, [&] { return messages.size() == 100 && receivers.size() == 100; }));
    bool in_order = true;
    for (int i = 0; i < 100; ++i)
        if (messages[static_cast<std::size_t>(i)] != "m" + std::to_string(i)) in_order = false;
    CHECK(in_order);
    CHECK(channels.front() == "updates");
    CHECK(receivers.front() == 1);
    CHECK(receivers.back() == 1);

    // A command sent in subscribed mode (PING) still gets its own reply.
    auto [ec2, pong] = call(io, sub, {"PING"});
    REQUIRE_FALSE(ec2);
    CHECK(pong.kind == r::reply_kind::array);
    CHECK(pong.elements[0].str == "pong");
    sub->close();
    pub->close();
}

TEST_CASE("redis connection: a killed server fails every pending callback exactly once",
          "[redis]") {
    auto server = std::make_unique<redis_server>();
    asio::io_context io;
    auto c = connected(io, server->url());

    constexpr std::size_t pending = 20;
    std::vector<int> calls(pending, 0);
    std::vector<std::error_code> codes(pending);
    // BLPOP blocks the connection, so the PINGs pipelined behind it stay unanswered.
    c->command({"BLPOP", "never", "0"}, [&](std::error_code ec, r::reply) {
        ++calls[0];
        codes[0] = ec;
    });
    for (std::size_t i = 1; i < pending; ++i) {
        c->command({"PING"}, [&, i](std::error_code ec, r::reply) {
            ++calls[i];
            codes[i] = ec;
        });
    }
    run_until(
        io, [] { return false; }, 200ms);
    bool none_yet = true;
    for (int n : calls)
        if (n != 0) none_yet = false;
    REQUIRE(none_yet);
    REQUIRE(c->connected());

    server->kill_now();
    auto all_called = [&] {
        for (int n : calls)
            if (n == 0) return false;
        return true;
    };
    REQUIRE(run_until(io, all_called));
    run_until(
        io, [] { return false; }, 200ms);
    bool once = true;
    bool errored = true;
    for (std::size_t i = 0; i < pending; ++i) {
        if (calls[i] != 1) once = false;
        if (!codes[i]) errored = false;
    }
    CHECK(once);
    CHECK(errored);
    CHECK_FALSE(c->connected());

    auto [ec, rep] = call(io, c, {"PING"});
    CHECK(ec == asio::error::not_connected);
    c->close();
}

TEST_CASE("redis connection: close() aborts pending commands once", "[redis]") {
    redis_server server;
    asio::io_context io;
    auto c = connected(io, server.url());
    int calls = 0;
    std::error_code code;
    c->command({"BLPOP", "never", "0"}, [&](std::error_code ec, r::reply) {
        ++calls;
        code = ec;
    });
    run_until(
        io, [] { return false; }, 100ms);
    c->close();
    c->close();
    REQUIRE(run_until(io, [&] { return calls > 0; }));
    run_until(
        io, [] { return false; }, 100ms);
    CHECK(calls == 1);
    CHECK(code == asio::error::operation_aborted);
    CHECK_FALSE(c->connected());
}

TEST_CASE("redis connection: a refused command's handler may close the connection", "[redis]") {
    // Commands handed over by send_formatted() to a failed link are refused together; the
    // first refusal closing the connection (as an owner closing from a bus callback does)
    // drains again, and every handler must still run exactly once.
    std::uint16_t port = 0;
    {
        redis_server server;
        port = server.port();
    }
    asio::io_context io;
    auto c = std::make_shared<r::connection>(
        io, must_parse("redis://127.0.0.1:" + std::to_string(port)));
    bool connect_answered = false;
    c->connect([&](std::error_code) { connect_answered = true; });
    REQUIRE(run_until(io, [&] { return connect_answered; }));

    constexpr int count = 3;
    std::vector<int> calls(count, 0);
    std::vector<std::error_code> codes(count);
    for (int i = 0; i < count; ++i) {
        c->send_formatted("*1\r\n$4\r\nPING\r\n", [&, i](std::error_code ec, r::reply) {
            ++calls[static_cast<std::size_t>(i)];
            codes[static_cast<std::size_t>(i)] = ec;
            if (i == 0) c->close_now();
        });
    }
    REQUIRE(run_until(io, [&] { return calls[count - 1] > 0; }));
    run_until(
        io, [] { return false; }, 100ms);
    for (int i = 0; i < count; ++i) {
        CHECK(calls[static_cast<std::size_t>(i)] == 1);
        CHECK(codes[static_cast<std::size_t>(i)] == asio::error::not_connected);
    }
}
