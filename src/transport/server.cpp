// The listener: accepts connections (backing off when the process is out of descriptors),
// sweeps their deadlines, and builds plain or TLS connections.

#include <cerrno>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>

#include "common/clock.hpp"
#include "transport/listener_state.hpp"
#include "transport/server_connection.hpp"
#include "transport/transport_server.hpp"

namespace gatehouse::detail {
namespace {

// Accept errors that say the process or the system is out of a resource: accepting again at
// once would fail the same way, in a busy loop (the pending connection stays in the backlog,
// so the listening socket stays readable).
// Asio reports errno values in its own system category, which is not comparable with
// std::errc, so the values are compared directly.
bool is_resource_exhaustion(const std::error_code& ec) noexcept {
    if (ec.category() != asio::system_category()) return false;
    const int e = ec.value();
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

class server final : public transport_server {
public:
    server(transport_events& events, asio::io_context& io, transport_options options,
           std::shared_ptr<asio::ssl::context> tls)
        : io_(io),
          state_(std::make_shared<listener_state>(events, std::move(options))),
          tls_(std::move(tls)),
          acceptor_(io),
          backoff_timer_(io),
          sweep_timer_(io) {}

    // Connections keep state_ alive; they never call back into this object. The timers and
    // the acceptor cancel what they have pending as they are destroyed. A connection may
    // outlive this listener and the io_context (a worker still holding an HTTP answer, a bus
    // callback holding a stream), so each is severed from the io_context first.
    ~server() override { state_->sever_all(); }

    std::error_code listen(const asio::ip::tcp::endpoint& endpoint) override {
        std::error_code ec;
        acceptor_.open(endpoint.protocol(), ec);
        if (!ec) acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
        if (!ec) acceptor_.bind(endpoint, ec);
        if (!ec) acceptor_.listen(1024, ec);
        if (ec) {
            std::error_code ignored;
            acceptor_.close(ignored);
            return ec;
        }
        accept();
        schedule_sweep();
        return {};
    }

    asio::ip::tcp::endpoint local_endpoint() const override {
        std::error_code ec;
        return acceptor_.local_endpoint(ec);
    }

    void stop_listening() override {
        std::error_code ec;
        acceptor_.close(ec);
    }

private:
    void accept() {
        acceptor_.async_accept(io_, [this](std::error_code ec, transport_socket socket) {
            if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
            if (ec) return accept_failed(ec);
            backoff_ = std::chrono::milliseconds{0};
            // The next accept first, so that it, not the new connection's first read, reuses
            // the memory Asio recycles from the accept that just completed: the read would
            // keep that larger block for as long as the connection idles (about 100 bytes).
            accept();
            start(std::move(socket));
        });
    }

    void accept_failed(const std::error_code& ec) {
        if (!is_resource_exhaustion(ec)) {
            // The peer went away between SYN and accept, and the like: nothing to wait for.
            accept();
            return;
        }
        // Wait before trying again, doubling up to a second: the listener neither spins nor
        // gives up, and accepts again as soon as descriptors are free.
        backoff_ = std::clamp(backoff_ * 2, std::chrono::milliseconds{10},
                              std::chrono::milliseconds{1000});
        state_->events.log(log_level::warn, "accept failed: " + ec.message() + "; retrying in " +
                                                std::to_string(backoff_.count()) + " ms");
        backoff_timer_.expires_after(backoff_);
        backoff_timer_.async_wait([this](std::error_code e) {
            if (!e && acceptor_.is_open()) accept();
        });
    }

    void start(transport_socket socket) {
        if (tls_) {
            auto c =
                std::make_shared<server_connection<true>>(state_, std::move(socket), tls_.get());
            state_->add(c);
            c->start();
        } else {
            auto c = std::make_shared<server_connection<false>>(state_, std::move(socket), nullptr);
            state_->add(c);
            c->start();
        }
    }

    // The deadlines of every connection (header, idle, close handshake), checked a few times
    // per shortest timeout: one timer for all connections rather than one per connection.
    void schedule_sweep() {
        const auto& o = state_->options;
        auto period = std::min({o.http_idle_timeout, o.http_header_timeout, o.close_timeout}) / 4;
        period = std::clamp(period, std::chrono::milliseconds{50}, std::chrono::milliseconds{1000});
        sweep_timer_.expires_after(period);
        sweep_timer_.async_wait([this](std::error_code ec) {
            if (ec) return;
            state_->sweep(steady_now_ms());
            schedule_sweep();
        });
    }

    asio::io_context& io_;
    std::shared_ptr<listener_state> state_;
    std::shared_ptr<asio::ssl::context> tls_;
    asio::ip::tcp::acceptor acceptor_;
    asio::steady_timer backoff_timer_;
    asio::steady_timer sweep_timer_;
    std::chrono::milliseconds backoff_{0};
};

}  // namespace

std::unique_ptr<transport_server> make_transport_server(transport_events& events,
                                                        asio::io_context& io,
                                                        transport_options options,
                                                        std::shared_ptr<asio::ssl::context> tls) {
    return std::make_unique<server>(events, io, std::move(options), std::move(tls));
}

}  // namespace gatehouse::detail
