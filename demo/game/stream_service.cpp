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
    : options_(std::move(options)), log_(std::move(log)), link_(options_.redis), store_(link_) {}

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
    if (is_error_reply(r.get(), "BUSYGROUP")) return true;
    if (is_error_reply(r.get(), "WRONGTYPE")) {
        throw fatal_error("cannot create group " + options_.group + " on " +
                          options_.command_stream + ": " + reply_text(r.get()));
    }
    if (is_error_reply(r.get())) {
        log_("XGROUP CREATE: " + reply_text(r.get()) + "; retrying");
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
    if (is_error_reply(r.get(), "NOGROUP")) {
        log_("group " + options_.group + " is gone; creating it again");
        return create_group();
    }
    if (is_error_reply(r.get())) {
        log_("XREADGROUP failed: " + reply_text(r.get()));
        return false;
    }
    if (r->type == REDIS_REPLY_NIL) return true;  // BLOCK expired with nothing new
    // [[stream, [[id, [field, value, ...]], ...]]]
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2 ||
        r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
        log_("unexpected XREADGROUP reply shape");
        return false;
    }
    const redisReply* entries = r->element[0]->element[1];
    if (pending && entries->elements == 0) {
        pending_from_.clear();  // the pending list is done: on to new entries
        return true;
    }
    for (std::size_t i = 0; i < entries->elements; ++i) {
        const redisReply* entry = entries->element[i];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) {
            log_("unexpected stream entry shape");
            return false;
        }
        const std::string id = reply_text(entry->element[0]);
        if (!answer(id, entry->element[1])) return false;
        if (pending) pending_from_ = id;
    }
    return true;
}

bool stream_service::answer(const std::string& id, const redisReply* fields) {
    // A pending entry trimmed away (MAXLEN) comes back with nil fields: nothing to play.
    if (fields->type != REDIS_REPLY_ARRAY) return ack(id);
    std::map<std::string, std::string> f;
    for (std::size_t k = 0; k + 1 < fields->elements; k += 2) {
        f[reply_text(fields->element[k])] = reply_text(fields->element[k + 1]);
    }
    command c;
    c.type = f["type"];
    c.player_id = f["player_id"];
    c.correlation_id = f["correlation_id"];
    c.codec = f["codec"];
    c.payload = f["payload"];
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
        const auto r = link_.command({"PUBLISH", options_.updates_channel, result.update});
        if (!r) return lost("PUBLISH");
        if (is_error_reply(r.get())) {
            log_("PUBLISH failed: " + reply_text(r.get()));
            return false;
        }
        ++answered_;
    }
    return ack(id);
}

bool stream_service::ack(const std::string& id) {
    const auto r = link_.command({"XACK", options_.command_stream, options_.group, id});
    if (!r) return lost("XACK");
    if (is_error_reply(r.get())) {
        log_("XACK failed: " + reply_text(r.get()));
        return false;
    }
    return true;
}

}  // namespace gatehouse_demo::game
