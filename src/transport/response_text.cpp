#include "transport/response_text.hpp"

#include <chrono>
#include <ctime>

namespace gatehouse::detail {

std::string_view http_date_now() {
    thread_local std::time_t formatted_at = 0;
    thread_local char text[32] = {};
    thread_local std::size_t length = 0;
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    if (now != formatted_at) {
        std::tm utc{};
        gmtime_r(&now, &utc);
        length = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
        formatted_at = now;
    }
    return {text, length};
}

std::string response_text(const http_response& response, response_framing framing) {
    const int status = response.status;
    // RFC 9110 sections 8.6 and 15: these never carry content, nor a Content-Length.
    const bool bodyless = (status >= 100 && status < 200) || status == 204 || status == 304;
    std::string out;
    out.reserve(160 + response.body.size());
    out += "HTTP/1.1 ";
    out += std::to_string(status);
    out += ' ';
    out += http_status_title(status);
    out += "\r\nServer: gatehouse\r\nDate: ";
    out += http_date_now();
    out += "\r\n";
    if (!bodyless) {
        if (!response.content_type.empty()) {
            out += "Content-Type: ";
            out += response.content_type;
            out += "\r\n";
        }
        out += "Content-Length: ";
        out += std::to_string(response.body.size());
        out += "\r\n";
    }
    if (framing.close) {
        out += "Connection: close\r\n";
    } else if (framing.keep_alive_1_0) {
        out += "Connection: keep-alive\r\n";
    }
    for (const auto& [name, value] : response.headers) {
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
    out += "\r\n";
    if (!bodyless && !framing.head) out += response.body;
    return out;
}

}  // namespace gatehouse::detail
