#include "gateway/resume_join.hpp"

#include <string>
#include <utility>
#include <vector>

#include "gatehouse/update.hpp"
#include "gateway/json_text.hpp"

namespace gatehouse::detail {
namespace {

// `envelope` in `wire`'s encoding; false when the codec cannot carry it (or throws: a plug-in
// codec must not take the log's thread down).
bool encode_frame(const codec& wire, const envelope& message, std::vector<shared_frame>& out) {
    try {
        std::string bytes;
        if (wire.encode(message, bytes)) return false;
        out.push_back(make_frame(std::move(bytes), wire.frame()));
        return true;
    } catch (...) {
        return false;
    }
}

envelope control_message(std::string type, std::string payload_json) {
    envelope e;
    e.type = std::move(type);
    e.payload = std::move(payload_json);
    e.format = payload_format::json;
    return e;
}

std::string gap_payload(const std::string& resume) {
    std::string payload = "{\"resume\":";
    append_json_string(payload, resume);
    payload += '}';
    return payload;
}

}  // namespace

resume_join::resume_join(std::shared_ptr<const gateway_options> options,
                         std::shared_ptr<connection_manager> connections,
                         std::shared_ptr<gateway_metrics> metrics, std::shared_ptr<update_log> log)
    : options_(std::move(options)),
      connections_(std::move(connections)),
      metrics_(std::move(metrics)),
      log_(std::move(log)) {}

void resume_join::start(const std::shared_ptr<session>& s,
                        const std::function<void(bool resuming)>& add) {
    const auto& setup = s->setup();
    const std::string& resume = *setup.resume;
    if (!log_ || !valid_update_id(resume)) {
        // No log could hold it: the gap goes out before the connection is registered, so no
        // live update overtakes it.
        metrics_->resumes_gap.add();
        s->reply("gatehouse.gap", gap_payload(resume), {}, options_->log);
        add(false);
        return;
    }
    // Registered (holding its deliveries) before the read is sent: everything published after
    // the log executed the read reaches the router after this, so it is held; everything
    // before it is in the answer. finish_resume() drops what is in both.
    add(true);
    log_->read_after(
        setup.who.player_id, resume, 2 * options_->connections.max_buffered_bytes,
        [connections = connections_, metrics = metrics_, options = options_, id = setup.id,
         wire = setup.wire_codec, resume](log_read_result result) {
            // The replay, then `gatehouse.resumed`; finish_resume() sends it when it fits under
            // the transport's hard bound (twice the send buffer, docs/protocol.md 6.6) with what is
            // queued and held, else the gap: a replay that could never be queued would close
            // the connection with 4008 at every resume, and the client re-syncs instead.
            std::vector<shared_frame> replay;
            std::string through = resume;
            const std::size_t bound = 2 * options->connections.max_buffered_bytes;
            bool too_large = false;
            std::size_t replayed = 0;
            if (result.status == log_read_status::replay) {
                update parsed;
                std::size_t bytes = 0;
                for (auto& logged : result.updates) {
                    through = logged.update_id;
                    if (parse_update(logged.message, parsed)) continue;  // not from a logger
                    parsed.message.update_id = std::move(logged.update_id);
                    if (!encode_frame(*wire, parsed.message, replay)) continue;
                    ++replayed;
                    bytes += replay.back().size();
                    // Past the bound on its own: no need to encode the rest.
                    if (bytes > bound) {
                        too_large = true;
                        break;
                    }
                }
                if (too_large) {
                    replay.clear();
                } else {
                    encode_frame(*wire,
                                 control_message("gatehouse.resumed",
                                                 "{\"replayed\":" + std::to_string(replayed) + "}"),
                                 replay);
                }
            }
            std::vector<shared_frame> gap;
            encode_frame(*wire, control_message("gatehouse.gap", gap_payload(resume)), gap);
            const auto done = connections->finish_resume(id, replay, through,
                                                         gap.empty() ? shared_frame{} : gap[0]);
            switch (done.sent) {
                case resume_result::answer::replay:
                    metrics->resumes_replayed.add();
                    metrics->updates_replayed.add(replayed);
                    break;
                case resume_result::answer::gap:
                    metrics->resumes_gap.add();
                    if ((too_large || !replay.empty()) && options->log) {
                        options->log(log_level::info,
                                     "resume answered gap: the replay, with what the connection "
                                     "has queued and held, is larger than twice the send buffer "
                                     "(" +
                                         std::to_string(bound / 2) + " bytes)");
                    }
                    break;
                case resume_result::answer::none: break;
            }
        });
}

}  // namespace gatehouse::detail
