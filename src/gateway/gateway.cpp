#include "gatehouse/gateway.hpp"

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>

#include "gatehouse/errc.hpp"
#include "gateway/gateway_core.hpp"
#include "gateway/metrics_endpoint.hpp"
#include "transport/transport_server.hpp"

namespace gatehouse {
namespace {

// True for a host of digits and dots only: an IPv4 address, or a mistyped one (`300.0.0.1`)
// that must be refused as it is rather than sent to DNS as a name.
bool looks_numeric(std::string_view host) noexcept {
    return std::all_of(host.begin(), host.end(),
                       [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// A host name's address to listen on: the first IPv4 address it resolves to, else the first
// IPv6 one (`localhost` then means 127.0.0.1, where IPv4-only clients look for it).
std::error_code resolve_listen_host(asio::io_context& io, const std::string& host,
                                    asio::ip::address& out) {
    asio::ip::tcp::resolver resolver(io);
    std::error_code ec;
    const auto results = resolver.resolve(host, "0", asio::ip::resolver_base::passive, ec);
    if (ec || results.empty()) return errc::invalid_listen_address;
    out = results.begin()->endpoint().address();
    for (const auto& entry : results) {
        if (entry.endpoint().address().is_v4()) {
            out = entry.endpoint().address();
            break;
        }
    }
    return {};
}

// The syntax of `HOST:PORT`: a numeric IPv4 host, a bracketed IPv6 one (brackets removed in
// `host`) or a host name, and a port.
std::error_code split_listen(std::string_view text, std::string_view& host, unsigned& port,
                             bool& bracketed) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return errc::invalid_listen_address;
    host = text.substr(0, colon);
    const std::string_view port_text = text.substr(colon + 1);
    bracketed = host.front() == '[';
    if (bracketed) {
        if (host.size() < 3 || host.back() != ']') return errc::invalid_listen_address;
        host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string_view::npos) {
        return errc::invalid_listen_address;  // IPv6 needs brackets
    }
    port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535 ||
        port_text.empty()) {
        return errc::invalid_listen_address;
    }
    if (host.empty()) return errc::invalid_listen_address;
    std::error_code address_error;
    (void)asio::ip::make_address(std::string(host), address_error);
    if (address_error && (bracketed || looks_numeric(host))) return errc::invalid_listen_address;
    return {};
}

// `HOST:PORT` (split_listen), a host name resolved once, now.
std::error_code parse_listen(asio::io_context& io, std::string_view text,
                             asio::ip::tcp::endpoint& out) {
    std::string_view host;
    unsigned port = 0;
    bool bracketed = false;
    if (auto ec = split_listen(text, host, port, bracketed)) return ec;
    std::error_code address_error;
    auto address = asio::ip::make_address(std::string(host), address_error);
    if (address_error) {
        if (auto failed = resolve_listen_host(io, std::string(host), address)) return failed;
    }
    out = asio::ip::tcp::endpoint(address, static_cast<unsigned short>(port));
    return {};
}

std::string format_endpoint(const asio::ip::tcp::endpoint& e) {
    const auto address = e.address();
    std::string host = address.to_string();
    if (address.is_v6()) host = "[" + host + "]";
    return host + ":" + std::to_string(e.port());
}

}  // namespace

std::error_code check_listen_address(std::string_view host_port) {
    std::string_view host;
    unsigned port = 0;
    bool bracketed = false;
    return split_listen(host_port, host, port, bracketed);
}

// Runs the core's keepalive sweep every sweep_interval on the gateway's I/O context. Its timer
// handler holds it weakly: the gateway drops it after the I/O threads stopped, and a handler
// still queued then finds nothing to do.
class sweeper : public std::enable_shared_from_this<sweeper> {
public:
    sweeper(asio::io_context& io, std::weak_ptr<detail::gateway_core> core)
        : timer_(io), core_(std::move(core)) {}

    void arm(std::chrono::milliseconds interval) {
        timer_.expires_after(interval);
        timer_.async_wait([weak = weak_from_this(), interval](std::error_code ec) {
            const auto self = weak.lock();
            if (ec || !self) return;
            if (const auto core = self->core_.lock()) core->sweep();
            self->arm(interval);
        });
    }

private:
    asio::steady_timer timer_;
    std::weak_ptr<detail::gateway_core> core_;
};

struct gateway::impl {
    impl(gateway_options options, codec_registry codecs, std::shared_ptr<command_bus> bus,
         std::shared_ptr<pubsub_listener> listener, std::shared_ptr<update_log> log)
        : core(std::make_shared<detail::gateway_core>(std::move(options), std::move(codecs),
                                                      std::move(bus), std::move(listener),
                                                      std::move(log))) {}

    detail::transport_options transport_options() const {
        const auto& o = core->options();
        detail::transport_options t;
        t.max_message_bytes = o.max_message_bytes;
        t.http_idle_timeout = o.http_idle_timeout;
        t.http_header_timeout = o.http_header_timeout;
        t.ws_compression = o.ws_compression;
        // docs/protocol.md 6.6: past twice the send buffer, anything queued closes with 4008; reads
        // pause at the send buffer itself.
        t.read_pause_bytes = o.connections.max_buffered_bytes;
        t.max_queued_bytes = 2 * o.connections.max_buffered_bytes;
        std::string bad;
        // Checked when the gateway was built; cannot fail here.
        static_cast<void>(t.proxies.parse(o.trusted_proxies, bad));
        return t;
    }

    void run_io_thread() {
        // This thread's decode buffer for commands, owned here for the thread's life.
        envelope scratch;
        const detail::command_ingress::scratch_binding bound(scratch);
        io.run();
    }

    // `serve_spread`: wait out `drain_spread` serving the open connections (shutdown()); the
    // destructor does not (it still sends the spread `after_ms` values). A call while another
    // thread is in the spread cuts it short and returns once that shutdown has finished.
    void shutdown(bool serve_spread) {
        std::unique_lock<std::mutex> lock(lifecycle);
        if (phase == lifecycle_phase::spreading) {
            core->log(log_level::info, "drain cut short: closing the connections now");
            core->end_spread();
            stopped_changed.wait(lock, [this] { return phase == lifecycle_phase::stopped; });
            return;
        }
        if (phase != lifecycle_phase::running) return;
        const auto spread = core->options().drain_spread;
        if (spread.count() > 0) {
            // docs/protocol.md 6.7: new clients are refused from here, and the open ones told when
            // to come back, then served until the spread has passed or every one has left. The lock
            // is not held meanwhile, so that a second call can cut the spread short.
            core->begin_drain(spread);
            if (serve_spread) {
                phase = lifecycle_phase::spreading;
                lock.unlock();
                core->wait_for_spread(std::chrono::steady_clock::now() + spread);
                lock.lock();
            }
        }
        phase = lifecycle_phase::stopping;
        const auto deadline = std::chrono::steady_clock::now() + core->options().shutdown_timeout;
        // From here every upgrade is refused with 503 and no more commands are read; the
        // sessions close (1001) as their pending commands are answered, and what the bus has
        // not answered by the deadline is cancelled. The listening socket closes after the I/O
        // threads stop: Asio's acceptor cannot be closed safely while another thread may be
        // re-arming its accept.
        if (!core->shutdown(deadline)) {
            core->log(log_level::warn,
                      "shutdown timeout: closing the remaining connections and dropping the "
                      "answers the bus still owes");
        }
        // io.stop() also ends the sweep timer's loop; cancelling the timer from this thread
        // would race its re-arming on an I/O thread.
        io.stop();
        for (auto& t : threads) t.join();
        threads.clear();
        sweep.reset();
        server->stop_listening();
        if (metrics_server) metrics_server->stop_listening();
        phase = lifecycle_phase::stopped;
        stopped_changed.notify_all();
    }

    // Binds the metrics listener (gateway_options::metrics_listen) on the same I/O context and
    // TLS setting as the main one.
    std::error_code start_metrics_listener(const std::shared_ptr<asio::ssl::context>& tls) {
        const auto& text = core->options().metrics_listen;
        asio::ip::tcp::endpoint endpoint;
        std::error_code ec = parse_listen(io, text, endpoint);
        if (!ec) {
            metrics_events = std::make_unique<detail::metrics_endpoint>(core->shared_metrics(),
                                                                        core->options().log);
            metrics_server =
                detail::make_transport_server(*metrics_events, io, transport_options(), tls);
            ec = metrics_server->listen(endpoint);
        }
        if (ec) {
            core->log(log_level::error,
                      "cannot listen for metrics on " + text + ": " + ec.message());
            metrics_server.reset();
            return ec;
        }
        metrics_address = format_endpoint(metrics_server->local_endpoint());
        return {};
    }

    std::shared_ptr<detail::gateway_core> core;
    // What the metrics listener calls: declared before the I/O context and the listener, so
    // destroyed after both.
    std::unique_ptr<detail::metrics_endpoint> metrics_events;
    asio::io_context io;
    std::shared_ptr<sweeper> sweep;
    std::unique_ptr<detail::transport_server> server;
    std::unique_ptr<detail::transport_server> metrics_server;
    std::vector<std::thread> threads;
    std::string local_address;
    std::string metrics_address;
    // Not started, running, serving the drain's spread (the lock released), in the section 1
    // shutdown (the lock held), stopped.
    enum class lifecycle_phase { idle, running, spreading, stopping, stopped };
    std::mutex lifecycle;
    std::condition_variable stopped_changed;
    lifecycle_phase phase = lifecycle_phase::idle;
};

gateway::gateway(gateway_options options, codec_registry codecs, std::shared_ptr<command_bus> bus,
                 std::shared_ptr<pubsub_listener> listener, std::shared_ptr<update_log> log)
    : impl_(std::make_unique<impl>(std::move(options), std::move(codecs), std::move(bus),
                                   std::move(listener), std::move(log))) {}

gateway::~gateway() {
    impl_->shutdown(false);
    // The listeners before the I/O context they accept on.
    impl_->server.reset();
    impl_->metrics_server.reset();
    impl_->sweep.reset();
}

void gateway::add_route(std::string method, std::string path, http_handler handler) {
    impl_->core->add_route(std::move(method), std::move(path), std::move(handler));
}

std::vector<http_route> gateway::routes() const { return impl_->core->routes(); }

std::error_code gateway::start() {
    auto& d = *impl_;
    std::lock_guard<std::mutex> lock(d.lifecycle);
    if (d.phase != impl::lifecycle_phase::idle) return {};
    d.core->routes_complete();
    const auto& options = d.core->options();
    asio::ip::tcp::endpoint endpoint;
    if (auto ec = parse_listen(d.io, options.listen, endpoint)) return ec;

    std::shared_ptr<asio::ssl::context> tls;
    if (!options.tls_cert_file.empty()) {
        tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
        std::error_code ec;
        tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                             asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                             asio::ssl::context::no_tlsv1_1,
                         ec);
        if (!ec) tls->use_certificate_chain_file(options.tls_cert_file, ec);
        if (!ec) tls->use_private_key_file(options.tls_key_file, asio::ssl::context::pem, ec);
        if (ec) {
            d.core->log(log_level::error, "TLS setup failed: " + ec.message());
            return errc::tls_setup_failed;
        }
    }
    d.server = detail::make_transport_server(*d.core, d.io, d.transport_options(), tls);
    if (auto ec = d.server->listen(endpoint)) {
        d.server.reset();
        return ec;
    }
    if (!options.metrics_listen.empty()) {
        if (auto ec = d.start_metrics_listener(tls)) {
            d.server.reset();
            return ec;
        }
    }
    d.local_address = format_endpoint(d.server->local_endpoint());
    d.core->start_listener();
    d.sweep = std::make_shared<sweeper>(d.io, d.core);
    d.sweep->arm(d.core->sweep_interval());

    unsigned threads = options.threads;
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < threads; ++i) d.threads.emplace_back([&d] { d.run_io_thread(); });
    d.phase = impl::lifecycle_phase::running;
    d.core->log(log_level::info, "listening on " + d.local_address + " with " +
                                     std::to_string(threads) + " I/O thread(s), gateway_id " +
                                     d.core->gateway_id());
    if (d.metrics_server) {
        d.core->log(log_level::info, "serving /metrics on " + d.metrics_address);
    }
    return {};
}

std::string gateway::local_address() const { return impl_->local_address; }

std::string gateway::metrics_address() const { return impl_->metrics_address; }

void gateway::shutdown() { impl_->shutdown(true); }

bool gateway::ready() const noexcept { return impl_->core->ready(); }

const std::string& gateway::gateway_id() const noexcept { return impl_->core->gateway_id(); }

connection_manager& gateway::connections() noexcept { return impl_->core->connections(); }

metrics_registry& gateway::metrics() noexcept { return impl_->core->metrics(); }

std::error_code gateway::authenticate(std::string_view token, identity& who) const {
    return impl_->core->authenticate(token, who);
}

}  // namespace gatehouse
