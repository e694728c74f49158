#include "accounts/postgres_connection.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace gatehouse::detail::postgres {
namespace {

// Waits until `c`'s socket is ready for `events` or the deadline passes (false).
bool wait_socket(PGconn* c, short events, clock::time_point deadline) {
    pollfd p{};
    p.fd = PQsocket(c);
    p.events = events;
    if (p.fd < 0) return false;
    for (;;) {
        const auto left =
            std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
        if (left <= 0) return false;
        const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60'000)));
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) return false;
    }
}

}  // namespace

outcome execute(PGconn* c, std::string_view sql, std::initializer_list<std::string_view> params,
                clock::time_point deadline) {
    const std::string statement(sql);
    std::vector<std::string> copies;  // libpq wants NUL-terminated text parameters
    copies.reserve(params.size());
    for (const auto p : params) copies.emplace_back(p);
    std::vector<const char*> values;
    values.reserve(copies.size());
    for (const auto& p : copies) values.push_back(p.c_str());

    const int sent = values.empty()
                         ? PQsendQuery(c, statement.c_str())
                         : PQsendQueryParams(c, statement.c_str(), static_cast<int>(values.size()),
                                             nullptr, values.data(), nullptr, nullptr, 0);
    if (sent == 0) return outcome::connection_lost();
    for (;;) {
        const int flushed = PQflush(c);
        if (flushed == 0) break;
        if (flushed < 0 || !wait_socket(c, POLLIN | POLLOUT, deadline) || PQconsumeInput(c) == 0) {
            return outcome::connection_lost();
        }
    }
    // Every result is read (libpq needs that before the next statement); the first error wins,
    // else the last result is the answer.
    outcome answer;
    bool have = false;
    for (;;) {
        while (PQisBusy(c) != 0) {
            if (!wait_socket(c, POLLIN, deadline) || PQconsumeInput(c) == 0) {
                return outcome::connection_lost();
            }
        }
        result_handle r(PQgetResult(c));
        if (r == nullptr) break;
        if (!have || answer.ok()) {
            answer = outcome::of(std::move(r));
            have = true;
        }
    }
    if (!have || PQstatus(c) != CONNECTION_OK) return outcome::connection_lost();
    return answer;
}

std::string scrub(std::string message, const std::string& password) {
    if (!password.empty()) {
        for (std::size_t at = message.find(password); at != std::string::npos;
             at = message.find(password, at + 3)) {
            message.replace(at, password.size(), "***");
        }
    }
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
        message.pop_back();
    }
    return message;
}

}  // namespace gatehouse::detail::postgres
