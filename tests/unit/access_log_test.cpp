#include "gateway/access_log.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "gateway/session.hpp"

// The access state of a WebSocket or event stream: small (every open session holds one when
// the log is on), and its target rebuilt at the end as redact_target leaves the one it opened.

namespace {

struct captured {
    std::vector<std::string> targets, routes;
    std::vector<int> statuses;
};

gatehouse::detail::access_log capturing(captured& into) {
    return gatehouse::detail::access_log(
        [&into](const gatehouse::access_record& r) {
            into.targets.emplace_back(r.target);
            into.routes.emplace_back(r.route);
            into.statuses.push_back(r.status);
        },
        nullptr);
}

}  // namespace

TEST_CASE("access_log: a session's target is rebuilt as redacted at its end", "[access_log]") {
    using gatehouse::access_record;
    using gatehouse::detail::session_access;
    captured got;
    const auto log = capturing(got);
    const std::string resume = "1700000000000-0";
    struct row {
        access_record::kind what;
        std::string path, query, codec;
        const std::string* resume;
        std::string target, route;
    };
    const std::vector<row> rows{
        {access_record::kind::websocket, "/ws/player/eyJhbGciOi.x.y", "codec=json", "json", nullptr,
         "/ws/player/[redacted]?codec=json", "/ws/player"},
        {access_record::kind::websocket, "/ws/player", "", "msgpack", nullptr, "/ws/player",
         "/ws/player"},
        {access_record::kind::websocket, "/ws/player", "codec=msgpack&resume=" + resume, "msgpack",
         &resume, "/ws/player?codec=msgpack&resume=" + resume, "/ws/player"},
        {access_record::kind::websocket, "/ws/bot/secret-key", "", "json", nullptr,
         "/ws/bot/[redacted]", "/ws/bot"},
        {access_record::kind::event_stream, "/sse/player", "token=abc.def.ghi", "json", nullptr,
         "/sse/player?token=[redacted]", "/sse/player"},
    };
    for (const auto& r : rows) {
        session_access access(log, r.what, r.path, r.query, "127.0.0.1");
        access.finished(1000, "p", r.codec, r.resume);
        CHECK(got.targets.back() == r.target);
        CHECK(got.routes.back() == r.route);
        // What redact_target makes of the original: the record says the same.
        CHECK(gatehouse::detail::redacted_target(r.path, r.query) == r.target);
    }
    CHECK(got.statuses == std::vector<int>{101, 101, 101, 101, 200});
}

TEST_CASE("access_log: a session without the log pays one pointer", "[access_log]") {
    // The figures of docs/benchmarks.md ("the access log's per-session state"); a size above
    // these is a regression to explain there.
    CHECK(sizeof(gatehouse::detail::session_setup::access) == sizeof(void*));
    CHECK(sizeof(gatehouse::detail::session_access) <= 80);
}
