#include "stream_service.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "game_service.hpp"

namespace gatehouse_demo::game {
namespace {

// How long one XREADGROUP waits for new entries before the stop flag is looked at again.
constexpr int block_ms = 500;
constexpr const char* batch_size = "100";
constexpr auto backoff_min = std::chrono::milliseconds(50);
constexpr auto backoff_max = std::chrono::milliseconds(2000);

void sleep_unless_stopped(const volatile std::sig_atomic_t& stop, std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (stop == 0 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

}  // namespace

stream_service::stream_service(stream_service_options options,
                               std::function<void(const std::string&)> log)
    : options_(std::move(options)),
      log_(std::move(log)),
      link_(options_.redis_url),
      store_(link_) {}

void stream_service::run(const volatile std::sig_atomic_t& stop_requested,
                         const std::function<void()>& on_ready) {
    auto backoff = backoff_min;
    while (stop_requested == 0) {
        if (!link_.connected()) {
            if (!connect()) {
                sleep_unless_stopped(stop_requested, backoff);
                backoff = std::min(backoff * 2, backoff_max);
                continue;
            }
            if (!announced_) {
                announced_ = true;
                on_ready();
            }
        }
        if (read_and_answer()) {
            backoff = backoff_min;
            continue;
        }
        // The link broke, or Redis answered something we cannot act on: start over on a new
        // connection after a pause, re-reading this consumer's pending entries first.
        link_.reset();
        sleep_unless_stopped(stop_requested, backoff);
        backoff = std::min(backoff * 2, backoff_max);
    }
}

bool stream_service::connect() {
    std::string problem;
    switch (link_.connect(problem)) {
        case connect_result::connected: break;
        case connect_result::refused: throw fatal_error(problem);
        case connect_result::retry:
            // The first failure of an outage and every 30th after: enough to see it last.
            if (failed_connects_++ % 30 == 0) log_(problem + "; retrying");
            return false;
    }
    failed_connects_ = 0;
    if (!create_group()) {
        link_.reset();
        return false;
    }
    // Entries this consumer was given and did not acknowledge (a crash, a connection that
    // broke between PUBLISH and XACK) are played first.
    pending_from_ = "0";
    if (announced_) log_("reconnected to " + link_.redacted_url());
    return true;
}

// XGROUP CREATE ... $ MKSTREAM: a new group starts at the end of the stream (commands sent
// before the game first ran are not replayed). Run at every connect, so a Redis that
// restarted empty gets its group back.
bool stream_service::create_group() {
    const auto r = link_.command(
        {"XGROUP", "CREATE", options_.command_stream, options_.group, "$", "MKSTREAM"});
    if (!r) return lost("XGROUP CREATE");
    if (r->is_error("BUSYGROUP")) return true;
    if (r->is_error("WRONGTYPE")) {
        throw fatal_error("cannot create group " + options_.group + " on " +
                          options_.command_stream + ": " + r->str);
    }
    if (r->is_error()) {
        log_("XGROUP CREATE: " + r->str + "; retrying");
        return false;
    }
    log_("created group " + options_.group + " on " + options_.command_stream);
    return true;
}

bool stream_service::lost(const char* what) {
    log_(std::string("connection lost during ") + what + ": " + link_.last_error());
    return false;
}

bool stream_service::read_and_answer() {
    const bool pending = !pending_from_.empty();
    std::vector<std::string> args{"XREADGROUP",      "GROUP", options_.group,
                                  options_.consumer, "COUNT", batch_size};
    if (!pending) {
        args.emplace_back("BLOCK");
        args.push_back(std::to_string(block_ms));
    }
    args.emplace_back("STREAMS");
    args.push_back(options_.command_stream);
    args.push_back(pending ? pending_from_ : ">");
    const auto r = link_.command(args);
    if (!r) return lost("XREADGROUP");
    if (r->is_error("NOGROUP")) {
        log_("group " + options_.group + " is gone; creating it again");
        return create_group();
    }
    if (r->is_error()) {
        log_("XREADGROUP failed: " + r->str);
        return false;
    }
    using kind = gatehouse::redis_reply_kind;
    if (r->kind == kind::nil) return true;  // BLOCK expired with nothing new
    // [[stream, [[id, [field, value, ...]], ...]]]
    if (r->kind != kind::array || r->elements.size() != 1 || r->elements[0].kind != kind::array ||
        r->elements[0].elements.size() != 2 || r->elements[0].elements[1].kind != kind::array) {
        log_("unexpected XREADGROUP reply shape");
        return false;
    }
    const auto& entries = r->elements[0].elements[1].elements;
    if (pending && entries.empty()) {
        pending_from_.clear();  // the pending list is done: on to new entries
        return true;
    }
    for (const auto& entry : entries) {
        if (entry.kind != kind::array || entry.elements.size() != 2) {
            log_("unexpected stream entry shape");
            return false;
        }
        const std::string& id = entry.elements[0].str;
        if (!answer(id, entry.elements[1])) return false;
        if (pending) pending_from_ = id;
    }
    return true;
}

bool stream_service::answer(const std::string& id, const gatehouse::redis_reply& fields) {
    // A pending entry trimmed away (MAXLEN) comes back with nil fields: nothing to play.
    if (fields.kind != gatehouse::redis_reply_kind::array) return ack(id);
    std::map<std::string, std::string> f;
    for (std::size_t k = 0; k + 1 < fields.elements.size(); k += 2) {
        f[fields.elements[k].str] = fields.elements[k + 1].str;
    }
    command c;
    c.type = f["type"];
    c.player_id = f["player_id"];
    c.correlation_id = f["correlation_id"];
    c.codec = f["codec"];
    c.payload = f["payload"];
    c.entry_id = id;
    if (c.codec == "json" && c.payload == "null") c.payload.clear();
    if (c.type.empty() || c.player_id.empty()) {
        log_("entry " + id + " lacks type or player_id; skipped");
        return ack(id);
    }
    auto result = handle(store_, c, unix_now_ms());
    if (result.what == handled::store_failed) {
        log_("session store failed for entry " + id + " (" +
             (link_.connected() ? std::string("Redis answered an error") : link_.last_error()) +
             "); it stays pending");
        return false;
    }
    if (result.what == handled::answered) {
        if (!publish(result.update)) return false;
        ++answered_;
    }
    return ack(id);
}

// Through the update log (docs/protocol.md 6.4): FCALL gatehouse_publish, the function the gateway
// loads into Redis at connect, so that a player who reconnects with `resume` gets the state
// changes it missed. Until a gateway has loaded it (the game may start first, or Redis was
// restarted empty and no gateway has reconnected yet) a plain PUBLISH still reaches every
// connected player, unlogged; that is said once, not per update.
bool stream_service::publish(const std::string& update) {
    const auto r =
        link_.command({"FCALL", "gatehouse_publish", "0", options_.updates_channel, update});
    if (!r) return lost("FCALL gatehouse_publish");
    if (!r->is_error()) {
        unlogged_warned_ = false;
        return true;
    }
    if (r->str.find("Function not found") == std::string::npos) {
        log_("FCALL gatehouse_publish failed: " + r->str);
        return false;
    }
    if (!unlogged_warned_) {
        log_(
            "the gatehouse Redis functions are not loaded (no gateway connected yet?); "
            "publishing unlogged until they are");
        unlogged_warned_ = true;
    }
    const auto plain = link_.command({"PUBLISH", options_.updates_channel, update});
    if (!plain) return lost("PUBLISH");
    if (plain->is_error()) {
        log_("PUBLISH failed: " + plain->str);
        return false;
    }
    return true;
}

bool stream_service::ack(const std::string& id) {
    const auto r = link_.command({"XACK", options_.command_stream, options_.group, id});
    if (!r) return lost("XACK");
    if (r->is_error()) {
        log_("XACK failed: " + r->str);
        return false;
    }
    return true;
}

}  // namespace gatehouse_demo::game
