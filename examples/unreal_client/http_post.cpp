#include "http_post.hpp"

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <thread>

namespace gh_client {

namespace {

using clock = std::chrono::steady_clock;

// The body length the answer's head announces, or -1 (then the body ends with the connection).
long content_length(std::string_view head) {
    std::string lowered(head);
    for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto at = lowered.find("\r\ncontent-length:");
    if (at == std::string::npos) return -1;
    return std::strtol(lowered.c_str() + at + 17, nullptr, 10);
}

}  // namespace

http_result http_post_json(transport& t, const std::string& host, std::uint16_t port,
                           std::string_view path, std::string_view body, int timeout_ms) {
    const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
    http_result result;
    if (!t.connect(host, port, timeout_ms)) return result;
    std::string out = "POST " + std::string(path) + " HTTP/1.1\r\nHost: " + host + ":" +
                      std::to_string(port) +
                      "\r\nContent-Type: application/json\r\nConnection: close\r\n"
                      "Content-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
    std::string in;
    char buffer[4096];
    while (clock::now() < deadline) {
        std::size_t n = 0;
        if (!out.empty()) {
            const io_result r = t.send(out.data(), out.size(), n);
            if (r == io_result::error) break;
            out.erase(0, n);
        }
        const io_result r = t.receive(buffer, sizeof buffer, n);
        if (r == io_result::ok) in.append(buffer, n);
        const auto head_end = in.find("\r\n\r\n");
        const long length =
            head_end == std::string::npos ? -2 : content_length(in.substr(0, head_end));
        const bool complete =
            r == io_result::closed ||
            (length >= 0 && in.size() >= head_end + 4 + static_cast<std::size_t>(length));
        if (complete && head_end != std::string::npos) {
            const auto space = in.find(' ');
            result.status = std::atoi(in.c_str() + space + 1);
            result.body = in.substr(
                head_end + 4, length >= 0 ? static_cast<std::size_t>(length) : std::string::npos);
            break;
        }
        if (r == io_result::closed || r == io_result::error) break;
        // Nothing to do until bytes move: an engine would yield here instead of sleeping.
        if (r == io_result::would_block) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    t.close();
    return result;
}

}  // namespace gh_client
