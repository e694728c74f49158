// spdlog_logging: a gateway whose log, access log and audit log go to an spdlog logger through
// the header-only adapters of gatehouse/spdlog_sink.hpp (docs/embedding.md, "Logging"). The
// library itself does not link spdlog; this program does.
//
// It starts a gateway on 127.0.0.1:0, asks it for GET /health and GET /nope over a plain
// socket, and checks that the logger got an access line for each; it exits 0 when it did and
// 1 with a message otherwise, so it runs as a test (`ctest -R example.spdlog_logging`).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <string>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/in_process_bus.hpp"
#include "gatehouse/spdlog_sink.hpp"
#include "gatehouse/version.hpp"

namespace {

// One request on a fresh connection; the status line of the answer (bounded by 5 s timeouts).
std::string status_line(const std::string& address, const std::string& path) {
    const auto colon = address.rfind(':');
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
    inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval timeout{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::string response;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) {
        const std::string request =
            "GET " + path + " HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n";
        if (::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
            char buf[4096];
            for (int reads = 0; reads < 64; ++reads) {
                const auto n = ::recv(fd, buf, sizeof buf, 0);
                if (n <= 0) break;
                response.append(buf, static_cast<std::size_t>(n));
            }
        }
    }
    ::close(fd);
    return response.substr(0, response.find("\r\n"));
}

}  // namespace

int main(int argc, char** argv) {
    if (gatehouse::print_version_if_asked(argc, argv, "example_spdlog_logging")) return 0;

    // The embedder's logger: here into a string, so that the example can check it. Any spdlog
    // sink works (stderr_color_mt, a rotating file, syslog ...).
    std::ostringstream captured;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
    sink->set_pattern("%l %v");
    auto logger = std::make_shared<spdlog::logger>("game", sink);
    logger->set_level(spdlog::level::debug);

    auto bus = std::make_shared<gatehouse::in_process_bus>();
    gatehouse::gateway_options options;
    options.listen = "127.0.0.1:0";
    options.threads = 1;
    options.jwt_secret = "example-secret-not-for-production";
    // The library's messages at info and above (the logger's own level filters too), and one
    // access line per answered request and per ended WebSocket or event stream. With
    // gatehouse::accounts, accounts_options::audit = gatehouse::spdlog_audit_sink(logger).
    options.log = gatehouse::spdlog_log_sink(logger, gatehouse::log_level::info);
    options.access_log = gatehouse::spdlog_access_log_sink(logger);
    gatehouse::gateway gw(options, gatehouse::codec_registry::with_builtin_codecs(), bus, bus);
    if (const auto ec = gw.start()) {
        std::fprintf(stderr, "cannot start: %s\n", ec.message().c_str());
        return 1;
    }
    const std::string health = status_line(gw.local_address(), "/health");
    const std::string missing = status_line(gw.local_address(), "/nope");
    gw.shutdown();
    logger->flush();

    const std::string log = captured.str();
    std::fputs(log.c_str(), stdout);
    const bool ok = health == "HTTP/1.1 200 OK" && missing == "HTTP/1.1 404 Not Found" &&
                    log.find(
                        "info access type=http method=GET target=/health route=/health "
                        "status=200") != std::string::npos &&
                    log.find("route=other status=404") != std::string::npos;
    if (!ok) {
        std::fprintf(stderr, "missing access lines (answers: %s, %s)\n", health.c_str(),
                     missing.c_str());
        return 1;
    }
    return 0;
}
