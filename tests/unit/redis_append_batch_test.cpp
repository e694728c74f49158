#include "bus/redis_append_batch.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "redis/connection.hpp"

namespace r = gatehouse::detail::redis;

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
