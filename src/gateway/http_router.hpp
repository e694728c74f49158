#pragma once
// The route table of plain HTTP requests: exact paths, one handler per method, and prefix
// routes (`/ws/`); 404 for an unknown path and 405 with `Allow` for a known path asked with
// another method (the methods a path has also answer CORS preflights). The gateway's own routes
// (`/health`, `/ready`, `/metrics`, `/commands`, `/sse/player`, `/ws/`) are registered in it
// like an embedder's, as built-ins an embedder's route cannot replace (except `GET
// /openapi.json`, a default an embedder's own document replaces).

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/http.hpp"
#include "gatehouse/log.hpp"

namespace gatehouse::detail {

// Thread safety: register routes before the first `handle`; `handle` may then run on any
// number of threads at once.
class http_router {
public:
    explicit http_router(log_sink log) : log_(std::move(log)) {}

    // An embedder's route; a built-in one for the same method and path stays in place, unless
    // it was added as a default.
    void add(std::string method, std::string path, http_handler handler);
    // One of the gateway's own.
    void add_builtin(std::string method, std::string path, http_handler handler);
    // One of the gateway's own that an embedder's route for the same method and path replaces
    // (`GET /openapi.json`: an embedder describing routes of its own serves its own document).
    void add_default(std::string method, std::string path, http_handler handler);
    // Every request whose path starts with `prefix`, whatever its method.
    void add_prefix(std::string prefix, http_handler handler);

    // Every route: the exact ones by path, then method; then the prefix routes.
    std::vector<http_route> routes() const;

    // Dispatches one request. A handler's exception answers 500 (ignored when the handler had
    // answered already) instead of unwinding through the I/O thread.
    void handle(const http_request& request, const http_responder& respond) const;

    // The methods of the exact path `path` (`GET, POST`), as 405's `Allow` and a CORS
    // preflight name them; empty for a path without exact routes (prefix routes included).
    std::string methods(std::string_view path) const;

    // The pattern `handle` dispatches `request` under, for the access log and metrics: the
    // prefix or exact path of its route (also when the method is not allowed there), or
    // `other` when none matches. Valid as long as the router.
    std::string_view route_of(const http_request& request) const noexcept;

private:
    struct route {
        http_handler handler;
        bool builtin = false;
        bool replaceable = false;  // a default: an embedder's route takes its place
    };
    void call(const http_handler& handler, const http_request& request,
              const http_responder& respond) const;

    log_sink log_;
    // path -> method -> route
    std::map<std::string, std::map<std::string, route>, std::less<>> routes_;
    std::vector<std::pair<std::string, http_handler>> prefixes_;
};

}  // namespace gatehouse::detail
