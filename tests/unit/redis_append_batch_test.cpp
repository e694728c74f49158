#include "bus/redis_append_batch.hpp"

#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "bus/redis_update_log.hpp"
#include "redis/connection.hpp"
#include "redis_server_fixture.hpp"
#include "redis_sync_client.hpp"

namespace r = gatehouse::detail::redis;
using gatehouse_test::redis_server;
using gatehouse_test::sync_client;

namespace {

// One command as the producer formats it: pair, extra count, the eight values, extra fields.
std::size_t format_command(std::string& out, const std::string& payload,
                           const std::vector<std::string>& extra = {}) {
    r::format_bulk(out, "3:bob:c1");
    r::format_bulk(out, std::to_string(extra.size()));
    for (const std::string v :
         {"player_action", payload.c_str(), "json", "c1", "bob", "conn", "player", "17"}) {
        r::format_bulk(out, v);
    }
    for (const auto& e : extra) r::format_bulk(out, e);
    return 10 + extra.size();
}

bool add(r::append_batch& batch, const std::string& payload, bool& schedule) {
    gatehouse::append_handler done = [](std::error_code, std::string_view) {};
    return batch.add([&](std::string& out) { return format_command(out, payload); }, done,
                     schedule);
}

// What hiredis's own formatter makes of `argv`.
std::string hiredis_formatted(const std::vector<std::string>& argv) {
    std::vector<const char*> args;
    std::vector<std::size_t> lengths;
    for (const auto& a : argv) {
        args.push_back(a.data());
        lengths.push_back(a.size());
    }
    char* formatted = nullptr;
    const int len = redisFormatCommandArgv(&formatted, static_cast<int>(args.size()), args.data(),
                                           lengths.data());
    REQUIRE(len > 0);
    std::string out(formatted, static_cast<std::size_t>(len));
    redisFreeCommand(formatted);
    return out;
}

// Sends bytes already in RESP form to `server` on a connection of its own; Redis's reply.
r::reply send_formatted(const redis_server& server, const std::string& bytes) {
    timeval tv{2, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", server.port(), tv);
    REQUIRE(c != nullptr);
    REQUIRE(c->err == 0);
    redisSetTimeout(c, tv);
    REQUIRE(redisAppendFormattedCommand(c, bytes.data(), bytes.size()) == REDIS_OK);
    void* raw = nullptr;
    const int got = redisGetReply(c, &raw);
    r::reply out;
    if (got == REDIS_OK && raw != nullptr) out = r::from_hiredis(*static_cast<redisReply*>(raw));
    if (raw != nullptr) freeReplyObject(raw);
    redisFree(c);
    REQUIRE(got == REDIS_OK);
    return out;
}

r::reply error_reply(std::string message) {
    r::reply e;
    e.kind = r::reply_kind::error;
    e.str = std::move(message);
    return e;
}

}  // namespace

TEST_CASE("append_batch: never more than max_calls_in_flight calls unanswered",
          "[redis_bus][dedupe]") {
    r::append_batch batch("gh:commands", std::chrono::seconds(120), 0, "gw-1");
    constexpr std::size_t per_call = r::append_batch::max_commands_per_call;
    constexpr std::size_t calls = r::append_batch::max_calls_in_flight;
    bool schedule = false;
    // 15 calls in flight, then far more waiting than one call can carry.
    for (std::size_t i = 0; i < (calls - 1) * per_call; ++i) REQUIRE(add(batch, "{}", schedule));
    REQUIRE(batch.take().calls.size() == calls - 1);
    for (std::size_t i = 0; i < 3 * per_call + 1; ++i) REQUIRE(add(batch, "{}", schedule));
    auto one = batch.take();
    REQUIRE(one.calls.size() == 1);  // the cap, not the queue, decides
    REQUIRE(one.calls[0].handlers->size() == per_call);
    REQUIRE(r::split_call(std::string_view(one.bytes)).size() == per_call);
    REQUIRE(batch.take().calls.empty());  // held until an answer
    REQUIRE(batch.answered());
    auto next = batch.take();
    REQUIRE(next.calls.size() == 1);
    REQUIRE(batch.answered());  // still more waiting than went
    for (std::size_t i = 0; i < calls; ++i) batch.answered();
    // All answered: what is left (per_call + 1 commands) leaves whole, its bytes cut where the
    // taken ones ended.
    auto rest = batch.take();
    REQUIRE(rest.calls.size() == 2);
    REQUIRE(rest.calls[1].handlers->size() == 1);
    REQUIRE(r::split_call(std::string_view(rest.bytes)).size() == per_call + 1);
}

TEST_CASE("append_batch: commands waiting past max_waiting_bytes are refused",
          "[redis_bus][dedupe]") {
    r::append_batch batch("gh:commands", std::chrono::seconds(120), 0, "gw-1");
    const std::string big(std::size_t{64} * 1024, 'x');
    bool schedule = false;
    std::size_t accepted = 0;
    while (add(batch, big, schedule)) ++accepted;
    REQUIRE(accepted * big.size() >= r::append_batch::max_waiting_bytes);
    REQUIRE(accepted * big.size() < r::append_batch::max_waiting_bytes + 2 * big.size());
    // Taken (sent), they no longer count.
    REQUIRE_FALSE(batch.take().calls.empty());
    REQUIRE(add(batch, big, schedule));
}

TEST_CASE("append_batch: split_call gives back each command's values", "[redis_bus][dedupe]") {
    std::string bytes;
    format_command(bytes, "{\"a\":1}");
    format_command(bytes, "x\r\n$3", {"traceparent", "00-abc"});
    const auto commands = r::split_call(bytes);
    REQUIRE(commands.size() == 2);
    REQUIRE(commands[0].size() == 10);
    REQUIRE(commands[0][3] == "{\"a\":1}");
    REQUIRE(commands[1].size() == 12);
    REQUIRE(commands[1][3] == "x\r\n$3");
    REQUIRE(commands[1][11] == "00-abc");
    REQUIRE(r::split_call(bytes.substr(0, bytes.size() - 3)).empty());
}

TEST_CASE("append_batch: only 'Function not found' means the library is missing",
          "[redis_bus][dedupe]") {
    r::reply missing;
    missing.kind = r::reply_kind::error;
    missing.str = "ERR Function not found";
    REQUIRE(r::function_missing({}, missing));
    r::reply other = missing;
    other.str = "ERR gatehouse_append: a command's argument count is wrong";
    REQUIRE_FALSE(r::function_missing({}, other));
    REQUIRE_FALSE(r::function_missing(std::make_error_code(std::errc::timed_out), missing));
}

TEST_CASE("append_batch: a call is GATEHOUSE.APPEND or FCALL gatehouse_append over the same bytes",
          "[redis_bus][dedupe]") {
    r::append_batch batch("gh:commands", std::chrono::seconds(120), 5000, "gw-1");
    bool schedule = false;
    REQUIRE(add(batch, "{}", schedule));
    gatehouse::append_handler done = [](std::error_code, std::string_view) {};
    REQUIRE(batch.add(
        [&](std::string& out) {
            return format_command(out, "x", {"traceparent", "00-ab"});
        },
        done, schedule));
    const auto taken = batch.take();
    REQUIRE(taken.calls.size() == 1);
    std::vector<std::string> commands;
    for (const auto& command : r::split_call(taken.bytes)) {
        for (const auto v : command) commands.emplace_back(v);
    }
    REQUIRE(commands.size() == 22);

    std::vector<std::string> module{"GATEHOUSE.APPEND", "gh:commands", "120", "5000", "gw-1"};
    module.insert(module.end(), commands.begin(), commands.end());
    std::string ours;
    batch.format_call(ours, taken.bytes, taken.calls[0], r::append_via::module);
    CHECK(ours == hiredis_formatted(module));

    std::vector<std::string> function{
        "FCALL", "gatehouse_append", "1", "gh:commands", "120", "5000", "gw-1"};
    function.insert(function.end(), commands.begin(), commands.end());
    ours.clear();
    batch.format_call(ours, taken.bytes, taken.calls[0], r::append_via::function);
    CHECK(ours == hiredis_formatted(function));
}

TEST_CASE(
    "append_batch: a Redis without the module refuses GATEHOUSE.APPEND unrun; the same call "
    "goes through the function",
    "[redis_bus][dedupe]") {
    redis_server server;
    sync_client redis(server);
    REQUIRE(redis
                .run({"FUNCTION", "LOAD", "REPLACE",
                      r::update_log_library(1000, std::chrono::seconds(3600))})
                ->type == REDIS_REPLY_STRING);
    r::append_batch batch("gh:commands", std::chrono::seconds(120), 0, "gw-1");
    bool schedule = false;
    REQUIRE(add(batch, "{}", schedule));
    REQUIRE(add(batch, "{}", schedule));  // the same pair: a duplicate of the first
    const auto taken = batch.take();
    REQUIRE(taken.calls.size() == 1);

    std::string call;
    batch.format_call(call, taken.bytes, taken.calls[0], r::append_via::module);
    const auto unknown = send_formatted(server, call);
    INFO(unknown.str);
    CHECK(r::module_missing({}, unknown));
    CHECK_FALSE(r::function_missing({}, unknown));
    CHECK(redis.integer({"EXISTS", "gh:commands"}) == 0);  // nothing of it ran

    call.clear();
    batch.format_call(call, taken.bytes, taken.calls[0], r::append_via::function);
    const auto appended = send_formatted(server, call);
    CHECK_FALSE(r::module_missing({}, appended));
    REQUIRE(appended.kind == r::reply_kind::array);
    REQUIRE(appended.elements.size() == 2);
    CHECK(appended.elements[0].kind == r::reply_kind::string);
    CHECK(appended.elements[1].kind == r::reply_kind::status);
    CHECK(appended.elements[1].str == appended.elements[0].str);
    CHECK(redis.integer({"XLEN", "gh:commands"}) == 1);
}

TEST_CASE(
    "append_batch: only GATEHOUSE.APPEND unknown or not permitted means the module is missing",
    "[redis_bus][dedupe]") {
    for (const char* missing :
         {"ERR unknown command 'GATEHOUSE.APPEND', with args beginning with: 'gh:commands' ",
          "ERR unknown command 'gatehouse.append', with args beginning with: ",
          "ERR unknown command `GATEHOUSE.APPEND`, with args beginning with: `gh:commands`, ",
          "NOPERM this user has no permissions to run the 'gatehouse.append' command",
          "NOPERM User gw has no permissions to run the 'gatehouse.append' command"}) {
        INFO(missing);
        CHECK(r::module_missing({}, error_reply(missing)));
    }
    for (const char* other :
         {"ERR unknown command 'GATEHOUSE.APPENDX', with args beginning with: ",
          "ERR unknown command 'FCALL', with args beginning with: ",
          "ERR unknown command 'GATEHOUSE.APPEND`, with args beginning with: ",
          "ERR gatehouse_append: a command's argument count is wrong",
          "ERR gatehouse_append: XADD refused",
          "WRONGTYPE Operation against a key holding the wrong kind of value",
          "OOM command not allowed when used memory > 'maxmemory'.",
          "NOPERM this user has no permissions to access one of the keys used as arguments",
          "ERR Function not found"}) {
        INFO(other);
        CHECK_FALSE(r::module_missing({}, error_reply(other)));
    }
    const auto unknown = error_reply("ERR unknown command 'GATEHOUSE.APPEND', with args");
    CHECK_FALSE(r::module_missing(std::make_error_code(std::errc::timed_out), unknown));
    r::reply status;
    status.kind = r::reply_kind::status;
    status.str = unknown.str;
    CHECK_FALSE(r::module_missing({}, status));
}
