#include "gatehouse/redis_command_producer.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "bus/recent_commands.hpp"
#include "bus/redis_append_batch.hpp"
#include "bus/redis_reconnect.hpp"
#include "bus/redis_update_log.hpp"
#include "gatehouse/errc.hpp"
#include "redis/connection.hpp"
#include "redis/io_thread.hpp"
#include "redis/url.hpp"

namespace gatehouse {
namespace r = detail::redis;

namespace {

// The fields a command carries only when it has them, as name and value, on either path:
// payload_codec when the envelope names one, traceparent when it carries one
// (docs/protocol.md 6.8).
void format_optional_fields(std::string& out, const envelope& command) {
    if (!command.payload_codec.empty()) {
        r::format_bulk(out, "payload_codec");
        r::format_bulk(out, command.payload_codec);
    }
    if (!command.traceparent.empty()) {
        r::format_bulk(out, "traceparent");
        r::format_bulk(out, command.traceparent);
    }
}

}  // namespace

// Everything not atomic and not guarded by a named mutex is touched only on the I/O thread,
// which runs every handler, so they need no strand. Callbacks hold a weak_ptr to this state:
// the I/O thread itself holds it until its last handler ran, so a handler that finds it gone
// has nothing left to do but answer its caller.
struct redis_command_producer::state : std::enable_shared_from_this<state> {
    state(redis_command_producer_options o, r::url u)
        : options(std::move(o)),
          where(std::move(u)),
          redacted(r::redacted(where)),
          batch(options.command_stream, options.dedupe_window, options.stream_maxlen,
                options.gateway_id),
          library(r::update_log_library(options.update_log_size, options.update_log_ttl)),
          retry(io.context()),
          reconnect_backoff(options.reconnect_min, options.reconnect_max) {
        // The constant head of every XADD: `XADD <stream> [MAXLEN ~ N] *`, and the constant
        // gateway_id field, formatted once.
        head_args = 3;
        r::format_bulk(xadd_head, "XADD");
        r::format_bulk(xadd_head, options.command_stream);
        if (options.stream_maxlen != 0) {
            r::format_bulk(xadd_head, "MAXLEN");
            r::format_bulk(xadd_head, "~");
            r::format_bulk(xadd_head, std::to_string(options.stream_maxlen));
            head_args += 3;
        }
        r::format_bulk(xadd_head, "*");
        r::format_bulk(gateway_field, "gateway_id");
        r::format_bulk(gateway_field, options.gateway_id);
    }

    // First member: destroyed last, after everything that holds its io_context's objects.
    r::io_thread io;
    const redis_command_producer_options options;
    const r::url where;
    const std::string redacted;
    std::string xadd_head;
    std::size_t head_args = 0;
    std::string gateway_field;
    // While de-duplication is on, every command goes through here (docs/protocol.md 6.5), those
    // with a gateway-assigned correlation id too, so that one connection's commands stay in
    // order on the stream.
    r::append_batch batch;
    // The `gatehouse` function library, loaded at every connect and when found missing.
    const std::string library;

    // Guards `command` and `closed`. Appending threads hold it shared while they hand a
    // command to the connection, so close() (exclusive) knows that every command handed over
    // before it is in the connection, where closing it answers them, and every later one
    // sees `closed` and is answered at once.
    mutable std::shared_mutex command_mutex;
    std::shared_ptr<r::connection> command;
    bool closed = false;

    std::atomic<bool> up{false};
    // Whether the library is loaded: set by the answer to each FUNCTION LOAD, cleared when a
    // call finds it missing. Without it, commands are appended with a plain XADD, not
    // de-duplicated (logged when it is refused or lost).
    std::atomic<bool> library_loaded{false};
    // Whether GATEHOUSE.APPEND (the gatehouse Redis module, redis_module/) appends idempotent
    // commands instead of the function: asked at every connect while de-duplication is on,
    // cleared when a call finds the command unknown. Calls pick their head when they are sent.
    std::atomic<bool> append_module{false};
    asio::steady_timer retry;
    r::backoff reconnect_backoff;
    bool ever_up = false;
    // GATEHOUSE.APPEND and FCALL gatehouse_append calls not answered yet, and whether a batch
    // waits for them to be (see send_batch).
    std::size_t module_calls_in_flight = 0;
    std::size_t function_calls_in_flight = 0;
    bool batch_deferred = false;

    // wait_connected().
    mutable std::mutex state_mutex;
    mutable std::condition_variable state_changed;

    std::atomic<std::uint64_t> appended{0}, append_failures{0}, reconnects{0}, reply_errors{0},
        duplicates{0}, batches_deferred{0};
    // Every command's round trip on the connection (each new connection is given it).
    const std::shared_ptr<metric_histogram> roundtrip = std::make_shared<metric_histogram>();

    void log(log_level level, const std::string& message) const {
        if (options.log) options.log(level, "redis " + redacted + ": " + message);
    }

    void notify_state() {
        { std::lock_guard<std::mutex> lock(state_mutex); }
        state_changed.notify_all();
    }

    void connect() {
        auto c = std::make_shared<r::connection>(io.context(), where);
        c->set_timeout(options.timeout);
        c->set_roundtrip_histogram(roundtrip);
        {
            std::unique_lock<std::shared_mutex> lock(command_mutex);
            if (closed) return;
            command = c;
        }
        std::weak_ptr<state> weak = shared_from_this();
        std::weak_ptr<r::connection> weak_c = c;
        c->on_failure([weak, weak_c](std::error_code ec) {
            auto self = weak.lock();
            auto failed = weak_c.lock();
            if (self && failed) self->on_failure(*failed, ec);
        });
        c->connect([weak, weak_c](std::error_code ec) {
            auto self = weak.lock();
            auto connected = weak_c.lock();
            if (self && connected && !ec) self->load_library(*connected);
            // On an error on_failure runs too, and retries.
        });
    }

    // At connect, before the producer reports connected: a Redis restarted empty has lost the
    // library, and a gateway that said "ready" without it would fail every logged publish.
    // Again when a call finds it missing (library_missing). REPLACE, because another gateway
    // (or another version of this one) may have loaded it already.
    void load_library(r::connection& c, bool connecting = true) {
        std::weak_ptr<state> weak = shared_from_this();
        const bool detect = connecting && options.dedupe_window.count() > 0;
        c.command({"FUNCTION", "LOAD", "REPLACE", library},
                  [weak, connecting, detect](std::error_code ec, const r::reply& reply) {
                      auto self = weak.lock();
                      if (!self || ec) return;  // a broken link: on_failure retries
                      self->library_loaded.store(!reply.is_error(), std::memory_order_release);
                      if (reply.is_error()) {
                          // Commands still work without it (a plain XADD, or the module's
                          // command); the update log does not, nor, without the module, the
                          // de-duplication of retried commands.
                          self->log(log_level::error,
                                    "FUNCTION LOAD of the gatehouse library refused (" + reply.str +
                                        "); logged publishes and resumes fail and, without the "
                                        "gatehouse Redis module, retried commands are appended "
                                        "again until it loads (Redis 7.0 or later, and the "
                                        "FUNCTION command, needed)");
                      } else if (!connecting) {
                          self->log(log_level::info,
                                    "the gatehouse function library is loaded "
                                    "again; commands are de-duplicated");
                      }
                      if (connecting && !detect) self->on_connected();
                  });
        if (detect) detect_module(c);
    }

    // At connect, pipelined after the FUNCTION LOAD, before the producer reports connected:
    // whether this Redis has the gatehouse module, whose GATEHOUSE.APPEND costs Redis about half
    // the CPU of the function per command (bench/redis_append_cost.py: 2.4 against 4.2 µs).
    // Asked at every connect, so a Redis restarted with the module is used, and one restarted
    // without it is not.
    void detect_module(r::connection& c) {
        std::weak_ptr<state> weak = shared_from_this();
        c.command({"COMMAND", "INFO", "gatehouse.append"}, [weak](std::error_code ec,
                                                                  const r::reply& reply) {
            auto self = weak.lock();
            if (!self || ec) return;  // a broken link: on_failure retries
            // The command's description, or a nil element for a command Redis does
            // not know; an error (an ACL user without COMMAND) counts as not loaded.
            const bool loaded = reply.kind == r::reply_kind::array && reply.elements.size() == 1 &&
                                reply.elements[0].kind == r::reply_kind::array;
            self->append_module.store(loaded, std::memory_order_release);
            if (loaded) {
                self->log(log_level::info,
                          "idempotent commands appended by GATEHOUSE.APPEND (the "
                          "gatehouse Redis module)");
            } else if (self->library_loaded.load(std::memory_order_acquire)) {
                self->log(log_level::info,
                          "idempotent commands appended by FCALL gatehouse_append (the "
                          "gatehouse function library); loading the gatehouse Redis "
                          "module into Redis (docs/deployment.md) cuts its CPU per command "
                          "by about half");
            }
            self->on_connected();
        });
    }

    // Hands one command to the connection, or, when closed meanwhile, answers it at once as
    // not sent. `answer` runs exactly once either way.
    template <class Format, class Answer>
    void send(Format&& format, Answer&& answer) {
        {
            std::shared_lock<std::shared_mutex> lock(command_mutex);
            if (!closed && command) {
                command->send_with(std::forward<Format>(format), std::forward<Answer>(answer));
                return;
            }
        }
        answer(asio::error::not_connected, r::reply{});
    }

    void on_connected() {
        reconnect_backoff.reset();
        if (ever_up) reconnects.fetch_add(1, std::memory_order_relaxed);
        log(log_level::info,
            ever_up ? "command connection re-established" : "command connection up");
        ever_up = true;
        up.store(true, std::memory_order_release);
        notify_state();
    }

    void on_failure(const r::connection& c, std::error_code ec) {
        const int failed_attempts = reconnect_backoff.attempts();
        if (up.exchange(false)) {
            log(log_level::warn, "command connection lost (" + r::describe(c, ec) +
                                     "); commands get bus_unavailable until it is back");
            notify_state();
        } else if (failed_attempts == 0 || failed_attempts % 50 == 0) {
            // The first failure of an outage, then a reminder now and then: a Redis down for
            // an hour must not write a line per retry.
            log(log_level::warn, "cannot connect (" + r::describe(c, ec) + "); retrying, " +
                                     std::to_string(failed_attempts + 1) + " attempt(s)");
        }
        {
            std::shared_lock<std::shared_mutex> lock(command_mutex);
            if (closed) return;
        }
        retry.expires_after(reconnect_backoff.next());
        std::weak_ptr<state> weak = shared_from_this();
        retry.async_wait([weak](std::error_code wait_ec) {
            if (auto self = weak.lock(); self && !wait_ec) self->connect();
        });
    }

    // On the I/O thread: answers everything in flight, then lets the thread end.
    void shut_down() {
        retry.cancel();
        std::shared_ptr<r::connection> c;
        {
            std::unique_lock<std::shared_mutex> lock(command_mutex);
            c = std::move(command);
        }
        up.store(false, std::memory_order_release);
        notify_state();
        if (c) c->close_now();  // each pending done() runs now, once
        for (auto& done : batch.close()) {
            append_failures.fetch_add(1, std::memory_order_relaxed);
            done(make_error_code(errc::bus_unavailable), {});
        }
    }

    // Appending threads: queues one formatted command for the next batch. False when closed.
    template <class Format>
    bool queue_batched(Format&& format, append_handler& done) {
        bool schedule = false;
        if (!batch.add(std::forward<Format>(format), done, schedule)) return false;
        if (schedule) {
            std::weak_ptr<state> weak = shared_from_this();
            asio::post(io.context(), [weak] {
                if (auto self = weak.lock()) self->send_batch();
            });
        }
        return true;
    }

    // The answer to a plain XADD of one command.
    auto plain_answer(append_handler done) {
        std::weak_ptr<state> weak = shared_from_this();
        return [weak, done = std::move(done)](std::error_code ec, const r::reply& reply) mutable {
            auto self = weak.lock();
            if (!ec && reply.kind == r::reply_kind::string) {
                if (self) self->appended.fetch_add(1, std::memory_order_relaxed);
                done({}, reply.str);
                return;
            }
            if (self) {
                self->append_failures.fetch_add(1, std::memory_order_relaxed);
                // Redis refused the XADD itself: the command is not on the stream.
                if (!ec) self->count_reply_error("XADD", reply.str);
            }
            done(make_error_code(errc::bus_unavailable), {});
        };
    }

    // On the I/O thread: whether calls in flight may still be resent by a path that is no
    // longer the current one: GATEHOUSE.APPEND calls while the module is found missing (resent
    // through the function, or as plain XADDs), FCALL calls while neither the module nor the
    // library is there (resent as plain XADDs). A newer command sent before their answers would
    // land on the stream before them.
    bool resends_pending(bool module, bool has_library) const {
        return (!module && module_calls_in_flight > 0) ||
               (!module && !has_library && function_calls_in_flight > 0);
    }

    // On the I/O thread: everything queued, as `GATEHOUSE.APPEND`s or `FCALL
    // gatehouse_append`s, pipelined like any command; with neither the module nor the library
    // (de-duplication cannot be had), as the plain XADDs append() sends with the window 0. Every
    // command takes this path while the window is above 0, so that a connection's commands keep
    // their order on the stream whichever way each is appended.
    void send_batch() {
        const bool module = append_module.load(std::memory_order_acquire);
        const bool has_library = library_loaded.load(std::memory_order_acquire);
        if (resends_pending(module, has_library)) {
            // What waits goes after the calls that may still be resent (see send_call).
            batch_deferred = true;
            batches_deferred.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        for (;;) {
            auto taken = batch.take();
            // Kept until the calls are answered: a call that found the module or the library
            // missing is resent.
            const auto bytes = std::make_shared<const std::string>(std::move(taken.bytes));
            if (module || has_library) {
                const auto via = module ? r::append_via::module : r::append_via::function;
                for (const auto& call : taken.calls) send_call(bytes, call, via);
                return;
            }
            bool due = false;
            for (const auto& call : taken.calls) {
                resend_plain(std::string_view(*bytes).substr(call.from, call.to - call.from),
                             *call.handlers);
                due = batch.answered() || due;
            }
            if (!due) return;  // else more waited than one take() carries
        }
    }

    // On the I/O thread: one call of a batch; it counts as in flight until its answer ran.
    void send_call(const std::shared_ptr<const std::string>& bytes,
                   const r::append_batch::call& call, r::append_via via) {
        const auto format = [&](std::string& out) { batch.format_call(out, *bytes, call, via); };
        std::weak_ptr<state> weak = shared_from_this();
        ++(via == r::append_via::module ? module_calls_in_flight : function_calls_in_flight);
        send(format, [weak, bytes, call, via](std::error_code ec, const r::reply& reply) {
            auto self = weak.lock();
            const auto& handlers = call.handlers;
            // Every answer runs on the I/O thread (or in close_now, on it too).
            bool due = false;  // a batch waits for this answer
            if (self) {
                --(via == r::append_via::module ? self->module_calls_in_flight
                                                : self->function_calls_in_flight);
            }
            if (self && via == r::append_via::module && r::module_missing(ec, reply)) {
                // Certainly not appended: nothing of the call ran. Resent as the same call
                // through the function, which stays in flight in its place, or, without the
                // library, as plain XADDs.
                self->module_missing(reply.str);
                if (self->library_loaded.load(std::memory_order_acquire)) {
                    self->send_call(bytes, call, r::append_via::function);
                } else {
                    self->resend_plain(
                        std::string_view(*bytes).substr(call.from, call.to - call.from), *handlers);
                    due = self->batch.answered();
                }
            } else if (self && r::function_missing(ec, reply)) {
                // Certainly not appended: nothing of the call ran.
                self->library_missing();
                self->resend_plain(std::string_view(*bytes).substr(call.from, call.to - call.from),
                                   *handlers);
                due = self->batch.answered();
            } else {
                if (self) {
                    const auto outcome = r::count_appends(ec, reply, handlers->size());
                    self->appended.fetch_add(outcome.appended, std::memory_order_relaxed);
                    self->duplicates.fetch_add(outcome.duplicates, std::memory_order_relaxed);
                    self->append_failures.fetch_add(outcome.failed, std::memory_order_relaxed);
                    if (outcome.refused) {
                        self->count_reply_error(via == r::append_via::module
                                                    ? "GATEHOUSE.APPEND"
                                                    : "FCALL gatehouse_append",
                                                reply.str);
                    }
                    due = self->batch.answered();
                }
                r::answer_appends(ec, reply, *handlers);
            }
            if (!self) return;
            if (self->batch_deferred &&
                !self->resends_pending(self->append_module.load(std::memory_order_acquire),
                                       self->library_loaded.load(std::memory_order_acquire))) {
                self->batch_deferred = false;
                due = true;
            }
            if (due) self->send_batch();
        });
    }

    // On the I/O thread: Redis answered GATEHOUSE.APPEND as unknown (restarted without the
    // module, or MODULE UNLOAD) or as not allowed (an ACL user without +gatehouse.append, which
    // COMMAND INFO does not tell): calls take the function from now on, until a reconnect finds
    // the module again (detect_module). Only the first call to find it missing logs, with
    // Redis's answer, which tells the two apart.
    void module_missing(std::string_view answer) {
        if (!append_module.exchange(false, std::memory_order_acq_rel)) return;
        // Redis 7 quotes the call's first arguments after this (a player's ids, a payload):
        // not for the log.
        answer = answer.substr(0, answer.find(", with args beginning with"));
        log(log_level::warn,
            "GATEHOUSE.APPEND refused by Redis (" + std::string(answer) +
                "): the gatehouse Redis module is not loaded (MODULE UNLOAD, or a Redis started "
                "without it) or this connection's ACL user may not run it (+gatehouse.append); "
                "idempotent commands are appended by FCALL gatehouse_append (the function "
                "library) until a reconnect finds the module usable again");
    }

    // On the I/O thread: Redis answered a call of the library that it no longer has (a
    // FUNCTION FLUSH, or a gateway of another version loaded its own with REPLACE). Commands
    // take the plain XADD from now on, and the library is loaded once more on this connection;
    // only the first call to find it missing does so, so a burst of failures loads it once.
    void library_missing() {
        if (!library_loaded.exchange(false, std::memory_order_acq_rel)) return;
        std::shared_ptr<r::connection> c;
        {
            std::shared_lock<std::shared_mutex> lock(command_mutex);
            if (closed || !command) return;
            c = command;
        }
        log(log_level::warn,
            "the gatehouse function library is missing from Redis (FUNCTION FLUSH, or another "
            "gateway version's library loaded over it): loading it again; until then commands "
            "are appended by plain XADD, not de-duplicated");
        load_library(*c, false);
    }

    // On the I/O thread: the commands of a call that found the library missing, each as the
    // plain XADD that append() would have sent.
    void resend_plain(std::string_view call_bytes, std::vector<append_handler>& handlers) {
        static constexpr const char* names[] = {"type",           "payload",   "codec",
                                                "correlation_id", "player_id", "connection_id"};
        const auto commands = r::split_call(call_bytes);
        for (std::size_t i = 0; i < handlers.size(); ++i) {
            if (commands.size() != handlers.size()) {
                append_failures.fetch_add(1, std::memory_order_relaxed);
                handlers[i](make_error_code(errc::bus_unavailable), {});
                continue;
            }
            const auto& v = commands[i];  // pair, extra count, eight values, extra fields
            const auto format = [&](std::string& out) {
                r::format_array_header(out, head_args + 18 + (v.size() - 10));
                out += xadd_head;
                for (std::size_t k = 0; k < 6; ++k) {
                    r::format_bulk(out, names[k]);
                    r::format_bulk(out, v[2 + k]);
                }
                out += gateway_field;
                r::format_bulk(out, "client");
                r::format_bulk(out, v[8]);
                r::format_bulk(out, "ts_ms");
                r::format_bulk(out, v[9]);
                for (std::size_t k = 10; k < v.size(); ++k) r::format_bulk(out, v[k]);
            };
            send(format, plain_answer(std::move(handlers[i])));
        }
    }

    // Redis refused a command itself (the key holds another type, OOM, the function is
    // missing, ...): logged sparingly, a misconfiguration would otherwise log once per command.
    void count_reply_error(const char* what, const std::string& message) {
        const auto n = reply_errors.fetch_add(1, std::memory_order_relaxed);
        if (n % 1000 == 0) {
            log(log_level::error, std::string(what) + " refused: " + message + " (" +
                                      std::to_string(n + 1) + " so far)");
        }
    }
};

redis_command_producer::redis_command_producer(redis_command_producer_options options) {
    r::url where;
    if (r::parse_url(options.url, where)) {
        throw std::invalid_argument(
            "redis_command_producer: url is not redis://[user:password@]host[:port][/db]");
    }
    if (options.command_stream.empty()) {
        throw std::invalid_argument("redis_command_producer: command_stream must not be empty");
    }
    if (options.updates_channel.empty()) {
        throw std::invalid_argument("redis_command_producer: updates_channel must not be empty");
    }
    if (options.update_log_size == 0 || options.update_log_ttl.count() <= 0 ||
        options.update_log_ttl > std::chrono::hours(24 * 365)) {
        throw std::invalid_argument(
            "redis_command_producer: update_log_size must be at least 1 and update_log_ttl "
            "positive (up to a year)");
    }
    if (options.dedupe_window.count() < 0 || options.dedupe_window > std::chrono::hours(24 * 365)) {
        throw std::invalid_argument(
            "redis_command_producer: dedupe_window must be 0 (off) or positive (up to a year)");
    }
    if (options.timeout.count() <= 0 || options.reconnect_min.count() <= 0 ||
        options.reconnect_max < options.reconnect_min) {
        throw std::invalid_argument(
            "redis_command_producer: timeout and reconnect_min must be positive, "
            "reconnect_max >= reconnect_min");
    }
    state_ = std::make_shared<state>(std::move(options), std::move(where));
    state_->io.start(state_, state_->options.batch_scheduling);
    std::weak_ptr<state> weak = state_;
    asio::post(state_->io.context(), [weak] {
        if (auto self = weak.lock()) self->connect();
    });
}

redis_command_producer::~redis_command_producer() {
    try {
        close();
    } catch (...) {
        // close() throws only when the system cannot lock a mutex or join a thread; a
        // destructor has nobody to tell.
    }
}

void redis_command_producer::close() {
    auto& s = *state_;
    {
        std::unique_lock<std::shared_mutex> lock(s.command_mutex);
        if (s.closed) return;
        s.closed = true;
    }
    if (s.io.on_this_thread()) {
        s.shut_down();
    } else {
        asio::post(s.io.context(), [self = state_] { self->shut_down(); });
    }
    s.io.finish();
}

void redis_command_producer::append(const envelope& command, append_handler done) {
    auto& s = *state_;
    const auto refuse = [&s](append_handler& refused) {
        s.append_failures.fetch_add(1, std::memory_order_relaxed);
        refused(make_error_code(errc::bus_unavailable), {});
    };
    if (!s.up.load(std::memory_order_acquire)) return refuse(done);
    // Formatted here, on the caller's thread, straight into the connection's batch: the I/O
    // thread takes a whole batch per wake-up and only appends it to its output. Nine fields,
    // plus payload_codec when the envelope names one and traceparent when it carries one
    // (docs/protocol.md 6.8).
    const auto& o = command.origin;
    const bool named = !command.payload_codec.empty();
    const bool traced = !command.traceparent.empty();
    const std::string ts = std::to_string(o.accepted_at_ms);
    const std::size_t fields = std::size_t{18} + (named ? 2U : 0U) + (traced ? 2U : 0U);
    const auto format_fields = [&](std::string& out) {
        r::format_bulk(out, "type");
        r::format_bulk(out, command.type);
        r::format_bulk(out, "payload");
        r::format_bulk(out, command.payload);
        r::format_bulk(out, "codec");
        r::format_bulk(out, bus_codec_name(command.format));
        r::format_bulk(out, "correlation_id");
        r::format_bulk(out, command.correlation_id);
        r::format_bulk(out, "player_id");
        r::format_bulk(out, o.player_id);
        r::format_bulk(out, "connection_id");
        r::format_bulk(out, o.connection_id);
        out += s.gateway_field;
        r::format_bulk(out, "client");
        r::format_bulk(out, bus_client_name(o.client));
        r::format_bulk(out, "ts_ms");
        r::format_bulk(out, ts);
        format_optional_fields(out, command);
    };
    // De-duplication on (docs/protocol.md 6.5): the check and the append are one function call,
    // atomic in Redis, batched with the other commands waiting (see queue_batched). Only a
    // client's own correlation id is looked up: gateway-made ids are unique, their pair is
    // sent empty. With neither the module nor the library, the batch is sent as plain XADDs
    // (not de-duplicated), still in order after any older call being resent (send_batch).
    // With the window 0, a plain XADD.
    if (s.options.dedupe_window.count() > 0) {
        // Values only: GATEHOUSE.APPEND and gatehouse_append write the names (and the
        // gateway_id) themselves.
        const std::size_t extra = fields - 18;
        const auto format_batched = [&](std::string& out) {
            r::format_bulk(out, o.correlation_assigned
                                    ? std::string()
                                    : detail::command_pair(o.player_id, command.correlation_id));
            r::format_bulk(out, std::to_string(extra));
            r::format_bulk(out, command.type);
            r::format_bulk(out, command.payload);
            r::format_bulk(out, bus_codec_name(command.format));
            r::format_bulk(out, command.correlation_id);
            r::format_bulk(out, o.player_id);
            r::format_bulk(out, o.connection_id);
            r::format_bulk(out, bus_client_name(o.client));
            r::format_bulk(out, ts);
            format_optional_fields(out, command);
            return std::size_t{10} + extra;
        };
        if (!s.queue_batched(format_batched, done)) refuse(done);
        return;
    }
    const auto format = [&](std::string& out) {
        r::format_array_header(out, s.head_args + fields);
        out += s.xadd_head;
        format_fields(out);
    };
    s.send(format, s.plain_answer(std::move(done)));
}

void redis_command_producer::publish_logged(std::string message, logged_publish_handler done) {
    auto& s = *state_;
    if (!s.up.load(std::memory_order_acquire)) {
        done(make_error_code(errc::bus_unavailable), {});
        return;
    }
    const auto format = [&](std::string& out) {
        r::format_logged_publish(out, s.options.updates_channel, message);
    };
    std::weak_ptr<state> weak = state_;
    auto answer = [weak, done = std::move(done)](std::error_code ec, const r::reply& reply) {
        update_ids ids;
        if (ec) {
            done(make_error_code(errc::bus_unavailable), std::move(ids));
            return;
        }
        const auto refused = r::parse_logged_publish(reply, ids);
        if (refused == errc::bus_unavailable) {
            if (auto self = weak.lock()) {
                if (r::function_missing(ec, reply)) self->library_missing();
                // Typically the library is not loaded (see load_library); logged sparingly.
                const auto n = self->reply_errors.fetch_add(1, std::memory_order_relaxed);
                if (n % 1000 == 0) {
                    self->log(log_level::error, "FCALL gatehouse_publish failed: " + reply.str +
                                                    " (" + std::to_string(n + 1) +
                                                    " Redis errors so far)");
                }
            }
        }
        done(refused, std::move(ids));
    };
    s.send(format, std::move(answer));
}

void redis_command_producer::read_after(std::string player_id, std::string after_id,
                                        std::size_t max_bytes, log_read_handler done) {
    auto& s = *state_;
    if (!valid_update_id(after_id)) {
        done(log_read_result{});  // not an id the log could have issued: gap
        return;
    }
    if (!s.up.load(std::memory_order_acquire)) {
        done(log_read_result{log_read_status::unavailable, {}});
        return;
    }
    const auto format = [&](std::string& out) {
        r::format_log_read(out, s.options.updates_channel, player_id, after_id, max_bytes);
    };
    std::weak_ptr<state> weak = state_;
    auto answer = [weak, done = std::move(done)](std::error_code ec, const r::reply& reply) {
        if (ec) {
            done(log_read_result{log_read_status::unavailable, {}});
            return;
        }
        if (r::function_missing(ec, reply)) {
            if (auto self = weak.lock()) self->library_missing();
        }
        done(r::parse_log_read(reply));
    };
    s.send(format, std::move(answer));
}

bool redis_command_producer::connected() const noexcept {
    return state_->up.load(std::memory_order_acquire);
}

bool redis_command_producer::wait_connected(std::chrono::milliseconds limit) const {
    auto& s = *state_;
    std::unique_lock<std::mutex> lock(s.state_mutex);
    return s.state_changed.wait_for(lock, limit,
                                    [&s] { return s.up.load(std::memory_order_acquire); });
}

redis_command_producer_stats redis_command_producer::stats() const noexcept {
    const auto& s = *state_;
    redis_command_producer_stats out;
    out.appended = s.appended.load(std::memory_order_relaxed);
    out.append_failures = s.append_failures.load(std::memory_order_relaxed);
    out.reconnects = s.reconnects.load(std::memory_order_relaxed);
    out.duplicates = s.duplicates.load(std::memory_order_relaxed);
    // Only while connected: a reconnect asks again, and may find Redis without it.
    out.append_module =
        s.up.load(std::memory_order_relaxed) && s.append_module.load(std::memory_order_relaxed);
    out.batches_deferred = s.batches_deferred.load(std::memory_order_relaxed);
    return out;
}

std::shared_ptr<const metric_histogram> redis_command_producer::roundtrip_histogram()
    const noexcept {
    return state_->roundtrip;
}

const std::string& redis_command_producer::redacted_url() const noexcept {
    return state_->redacted;
}

}  // namespace gatehouse
