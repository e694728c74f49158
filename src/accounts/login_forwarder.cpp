#include "accounts/login_forwarder.hpp"

#include "gatehouse/accounts.hpp"
#include "http/text.hpp"

namespace gatehouse::detail {
namespace {

// Largest answer relayed: account answers are small JSON documents.
constexpr std::size_t max_answer_bytes = std::size_t{256} * 1024;

http_response unavailable(std::string_view why) {
    return http_response::problem(502, "login_service_unavailable", why);
}

// The service's answer as the gateway relays it: status, Content-Type, Retry-After, body.
http_response relayed(const std::string& answer) {
    const auto head_end = answer.find("\r\n\r\n");
    if (head_end == std::string::npos || answer.compare(0, 5, "HTTP/") != 0) {
        return unavailable("the login service's answer is not HTTP");
    }
    http_response out;
    const int status = http_answer_status(answer);
    if (status == 0) return unavailable("the login service's answer has no status");
    out.status = status;
    out.content_type.clear();
    std::string_view headers = std::string_view(answer).substr(0, head_end);
    while (!headers.empty()) {
        const auto eol = headers.find("\r\n");
        const auto line = headers.substr(0, eol);
        headers = eol == std::string_view::npos ? std::string_view{} : headers.substr(eol + 2);
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        const auto name = line.substr(0, colon);
        const auto value = trim(line.substr(colon + 1));
        if (iequals(name, "Content-Type")) out.content_type = std::string(value);
        if (iequals(name, "Retry-After"))
            out.headers.emplace_back("Retry-After", std::string(value));
    }
    if (out.content_type.empty()) out.content_type = "application/json";
    out.body = answer.substr(head_end + 4);
    return out;
}

}  // namespace

login_forwarder::login_forwarder(std::string_view url, std::chrono::milliseconds timeout)
    : target_(http_target::parse(url)), timeout_(timeout) {}

http_response login_forwarder::forward(std::string_view path, std::string_view content_type,
                                       std::string_view body) const {
    if (!target_) return unavailable("cannot connect to the login service");
    std::string answer;
    if (const auto failed =
            http_post(*target_, path, content_type, body, timeout_, max_answer_bytes, answer)) {
        const bool timed_out = failed.error == std::errc::timed_out;
        switch (failed.stage) {
            case http_stage::connect: return unavailable("cannot connect to the login service");
            case http_stage::send:
                return unavailable(timed_out ? "timed out sending" : "send failed");
            case http_stage::receive:
                if (failed.error == std::errc::message_size) {
                    return unavailable("answer too large");
                }
                return unavailable(timed_out ? "timed out waiting" : "receive failed");
        }
    }
    return relayed(answer);
}

}  // namespace gatehouse::detail

namespace gatehouse {

bool valid_login_service_url(std::string_view url) {
    return detail::login_forwarder(url, std::chrono::milliseconds(1)).valid();
}

}  // namespace gatehouse
