// gatehouse-server, placeholder edition. The gateway itself comes later; until then this binary
// already honours the start-up contract of PROTOCOL.md section 1 (flags with environment twins,
// the ready line on stdout, a clean exit 0 on SIGINT/SIGTERM) so that scripts, CI and the
// integration tests can be written against the real interface from day one. Flags it does not
// implement yet are refused rather than silently ignored: a deployment that passes --redis to
// this build must not believe it is talking to Redis.

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace {

// Exit codes scripts can tell apart: 2 is the conventional "you called me wrongly", 1 is "the
// environment did not let me run" (port in use, permissions, ...).
constexpr int exit_runtime_error = 1;
constexpr int exit_usage_error = 2;

// After a failed accept (most likely out of file descriptors) wait a little before the next
// try, so that a persistent failure does not turn into a busy loop that also floods the log.
constexpr std::chrono::milliseconds accept_retry_delay{50};

struct listen_address {
    asio::ip::address host;
    std::uint16_t port = 0;
};

// Parses HOST:PORT, HOST being a numeric IPv4 address or a bracketed IPv6 address ("[::1]:80").
// Host names are refused instead of resolved: a listener bound to whichever address a resolver
// happened to return first is a source of surprises that an operator should not have to debug.
std::optional<listen_address> parse_listen(const std::string& text, std::string& error) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) {
        error = "expected HOST:PORT";
        return std::nullopt;
    }
    std::string host = text.substr(0, colon);
    const std::string port_text = text.substr(colon + 1);

    listen_address result;
    std::error_code ec;
    if (!host.empty() && host.front() == '[') {
        if (host.size() < 3 || host.back() != ']') {
            error = "unterminated '[' in IPv6 host";
            return std::nullopt;
        }
        result.host = asio::ip::make_address_v6(host.substr(1, host.size() - 2), ec);
        if (ec) {
            error = "'" + host + "' is not a valid IPv6 address";
            return std::nullopt;
        }
    } else {
        result.host = asio::ip::make_address_v4(host, ec);
        if (ec) {
            error = host.find(':') != std::string::npos
                        ? "IPv6 hosts must be written in brackets, e.g. [::1]:8080"
                        : "'" + host +
                              "' is not a numeric IPv4 address (host names are not "
                              "resolved)";
            return std::nullopt;
        }
    }

    // std::stoul would accept "+80", " 80" and "80abc"; a port is digits and nothing else.
    if (port_text.empty() || port_text.size() > 5 ||
        !std::all_of(port_text.begin(), port_text.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
        error = "port must be a number from 0 to 65535";
        return std::nullopt;
    }
    const unsigned long port = std::stoul(port_text);
    if (port > 65535) {
        error = "port must be a number from 0 to 65535";
        return std::nullopt;
    }
    result.port = static_cast<std::uint16_t>(port);
    return result;
}

// The inverse of parse_listen, so the ready line can be fed back into --listen verbatim.
std::string format_endpoint(const asio::ip::tcp::endpoint& endpoint) {
    const auto address = endpoint.address();
    const std::string host =
        address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
    return host + ":" + std::to_string(endpoint.port());
}

// Accepts connections and closes them at once, until stop(). Every use of the acceptor and the
// retry timer happens on one strand, so stop() (called from the signal handler) never races an
// accept completing on another I/O thread.
class placeholder_listener {
public:
    explicit placeholder_listener(asio::io_context& io)
        : strand_(asio::make_strand(io)), acceptor_(strand_), retry_timer_(strand_) {}

    // Binds synchronously, before any I/O thread runs, so failures are reported to the caller
    // and the ready line is only ever printed for a socket that really listens.
    std::error_code open(const asio::ip::tcp::endpoint& endpoint) {
        std::error_code ec;
        acceptor_.open(endpoint.protocol(), ec);
        if (ec) return ec;
        // Lets a restarted server reuse the port while old connections sit in TIME_WAIT; on
        // Linux it does not allow two live listeners on one port, so "port in use" still fails.
        acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
        if (ec) return ec;
        acceptor_.bind(endpoint, ec);
        if (ec) return ec;
        acceptor_.listen(asio::socket_base::max_listen_connections, ec);
        return ec;
    }

    asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

    void start() {
        asio::post(strand_, [this] { accept_next(); });
    }

    void stop() {
        asio::post(strand_, [this] {
            stopped_ = true;
            std::error_code ignored;
            acceptor_.close(ignored);
            retry_timer_.cancel();
        });
    }

private:
    void accept_next() {
        if (stopped_) return;
        acceptor_.async_accept(
            [this](std::error_code ec, asio::ip::tcp::socket socket) { on_accept(ec, socket); });
    }

    void on_accept(std::error_code ec, asio::ip::tcp::socket& socket) {
        if (stopped_ || ec == asio::error::operation_aborted) return;
        if (ec) {
            spdlog::warn("accept failed: {}; retrying", ec.message());
            retry_timer_.expires_after(accept_retry_delay);
            retry_timer_.async_wait([this](std::error_code wait_ec) {
                if (!wait_ec) accept_next();
            });
            return;
        }
        // Nothing to serve yet: closing at once tells a client that the port is alive but the
        // gateway is not, instead of leaving it waiting on a socket nobody reads.
        std::error_code ignored;
        socket.close(ignored);
        accept_next();
    }

    asio::strand<asio::io_context::executor_type> strand_;
    asio::ip::tcp::acceptor acceptor_;
    asio::steady_timer retry_timer_;
    bool stopped_ = false;
};

int run(const listen_address& listen, unsigned threads) {
    asio::io_context io{static_cast<int>(threads)};

    placeholder_listener listener{io};
    const asio::ip::tcp::endpoint requested{listen.host, listen.port};
    if (const auto ec = listener.open(requested)) {
        spdlog::error("cannot listen on {}: {}", format_endpoint(requested), ec.message());
        return exit_runtime_error;
    }

    // Registered before the ready line, so a signal sent right after it is never lost to the
    // default disposition (which would end the process without exit code 0).
    asio::signal_set signals{io, SIGINT, SIGTERM};
    signals.async_wait([&listener](std::error_code ec, int signal_number) {
        if (ec) return;
        spdlog::info("received signal {}, shutting down", signal_number);
        // Stopping the listener leaves the io_context without work, so every run() returns.
        listener.stop();
    });

    listener.start();

    const std::string bound = format_endpoint(listener.local_endpoint());
    spdlog::warn(
        "this is the placeholder gatehouse-server: it accepts TCP connections on {} and closes "
        "them at once; the HTTP/WebSocket gateway is not implemented yet",
        bound);
    // The one line on stdout, the contract scripts wait for (PROTOCOL.md section 1). Flushed now
    // because stdout is a pipe under a supervisor or test, where it would otherwise be buffered.
    std::cout << "gatehouse ready listen=" << bound << std::endl;

    std::vector<std::thread> workers;
    workers.reserve(threads - 1);
    for (unsigned i = 1; i < threads; ++i) workers.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& worker : workers) worker.join();

    spdlog::info("stopped");
    return 0;
}

int run_main(int argc, char** argv) {
    // Logs go to stderr: stdout carries only the ready line, which tools parse.
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "gatehouse-server", std::make_shared<spdlog::sinks::stderr_color_sink_mt>()));

    CLI::App app{
        "gatehouse-server (placeholder): binds the listener and closes every connection; the "
        "gateway is not implemented yet.",
        "gatehouse-server"};
    std::string listen_text = "0.0.0.0:8080";
    app.add_option("--listen", listen_text, "Address to listen on, HOST:PORT; port 0 picks one")
        ->envname("GATEHOUSE_LISTEN")
        ->capture_default_str();
    unsigned threads = std::max(1U, std::thread::hardware_concurrency());
    app.add_option("--threads", threads, "Number of I/O threads")
        ->envname("GATEHOUSE_THREADS")
        ->check(CLI::Range(1U, 1024U))
        ->capture_default_str();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // app.exit prints the message (or the help text) and says 0 for --help; every real
        // parse error becomes 2 rather than CLI11's own per-error codes, which no one can rely on.
        return app.exit(e) == 0 ? 0 : exit_usage_error;
    }

    std::string error;
    const auto listen = parse_listen(listen_text, error);
    if (!listen) {
        // CLI11 does not say whether the value came from the flag or its variable; name both.
        std::cerr << "gatehouse-server: invalid --listen/GATEHOUSE_LISTEN value '" << listen_text
                  << "': " << error << "\n";
        return exit_usage_error;
    }

    try {
        return run(*listen, threads);
    } catch (const std::exception& e) {
        // Only resource exhaustion (threads, memory) can get here; say so instead of aborting.
        spdlog::critical("fatal: {}", e.what());
        return exit_runtime_error;
    }
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run_main(argc, argv);
    } catch (const std::exception& e) {
        // Logger or option set-up failing (out of memory): report it rather than abort.
        std::cerr << "gatehouse-server: fatal: " << e.what() << "\n";
        return exit_runtime_error;
    }
}
