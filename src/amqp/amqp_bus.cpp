#include "gatehouse/amqp_bus.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "amqp/link.hpp"
#include "amqp/url.hpp"
#include "common/backoff.hpp"
#include "common/clock.hpp"
#include "gatehouse/errc.hpp"

namespace gatehouse {
namespace a = detail::amqp;

namespace {

std::string_view content_type(payload_format format) {
    switch (format) {
        case payload_format::json: return "application/json";
        case payload_format::msgpack: return "application/msgpack";
        case payload_format::bytes: return "application/x-protobuf";
    }
    return "application/octet-stream";
}

amqp_bytes_t bytes(std::string_view s) {
    amqp_bytes_t b;
    b.len = s.size();
    b.bytes = const_cast<char*>(s.data());  // rabbitmq-c only reads it
    return b;
}

// An update larger than this is dropped unread (the broker's own limit is 128 MiB): the same
// bound Redis puts on a Pub/Sub subscriber by default (client-output-buffer-limit pubsub).
constexpr std::uint64_t max_update_bytes = 32u << 20;

// True when the socket takes more bytes now. A publish is written whole and rabbitmq-c waits
// without a deadline for room in the socket, so the bus only publishes into a writable socket:
// a broker that stops reading (paused, or TCP flow control) stalls the queue, not the thread,
// and the confirm deadline still runs.
bool writable(int fd) {
    pollfd p{fd, POLLOUT, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) != 0;
}

amqp_table_entry_t text_entry(const char* key, std::string_view value) {
    amqp_table_entry_t e{};
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = bytes(value);
    return e;
}

}  // namespace

// The state the I/O thread shares with the bus's callers. The thread holds it (a shared_ptr)
// until it ends, so a bus destroyed from one of its own callbacks leaves it intact.
struct amqp_bus::state {
    state(amqp_bus_options o, a::url u)
        : options(std::move(o)),
          where(std::move(u)),
          redacted(a::redacted(where)),
          reconnect_backoff(options.reconnect_min, options.reconnect_max) {}

    ~state() {
        if (wake_fd >= 0) ::close(wake_fd);
    }

    const amqp_bus_options options;
    const a::url where;
    const std::string redacted;
    int wake_fd = -1;
    std::thread thread;
    std::thread::id io_id;  // the thread's id, read without touching `thread`

    // Guards `queued`, `closed`, `consume_wanted` and `cancel_wanted`; notified (with the wake
    // fd) whenever one changes. `queued` only fills while `up` is true, and the I/O thread
    // empties it on every turn, answering what it cannot publish.
    std::mutex mutex;
    std::condition_variable changed;
    struct queued_command {
        envelope command;
        append_handler done;
    };
    std::vector<queued_command> queued;
    bool closed = false;
    bool consume_wanted = false;
    bool cancel_wanted = false;

    // Held while the update handlers run, so that stop() can wait for a running one.
    std::mutex handler_mutex;
    update_handler on_message;
    resubscribed_handler on_resubscribed;

    std::atomic<bool> up{false};         // connected, the command topology declared
    std::atomic<bool> listening{false};  // start() called, stop() not
    std::atomic<bool> consuming{false};  // the updates consumer is on
    std::atomic<bool> blocked{false};    // the broker blocks publishing (a resource alarm)

    std::atomic<std::uint64_t> appended{0}, append_failures{0}, updates_received{0}, reconnects{0};
    // Commands accepted by append() and not answered yet (queued or flying): at most
    // options.max_in_flight.
    std::atomic<std::size_t> outstanding{0};

    // --- I/O thread only ---
    detail::backoff reconnect_backoff;
    struct in_flight {
        std::string entry_id;
        append_handler done;
        std::int64_t deadline_ms = 0;
        bool returned = false;  // the broker returned it unroutable: fails when confirmed
    };
    std::map<std::uint64_t, in_flight> flying;  // by delivery tag
    std::uint64_t next_tag = 0;
    std::int64_t last_id_ms = 0;
    std::uint64_t last_id_seq = 0;
    bool ever_up = false;
    bool ever_consumed = false;
    bool redeclare = false;  // a command came back unroutable: declare the topology again
    std::int64_t stalled_since_ms = 0;  // commands wait for a writable socket since then; 0: not
    // A message whose content frames are still coming, per channel.
    struct incoming {
        bool active = false;
        bool header_seen = false;
        bool skipped = false;  // over max_update_bytes: its body is counted down, not kept
        std::uint64_t size = 0;
        std::string body;
    };
    incoming update_in, return_in;

    void log(log_level level, const std::string& message) const {
        if (options.log) options.log(level, "amqp " + redacted + ": " + message);
    }

    void wake() {
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(wake_fd, &one, sizeof one);
    }

    void set_changed() {
        { std::lock_guard<std::mutex> lock(mutex); }
        changed.notify_all();
    }

    void set_up(bool value) {
        up.store(value, std::memory_order_release);
        if (!value) {
            consuming.store(false, std::memory_order_release);
            blocked.store(false, std::memory_order_release);
        }
        { std::lock_guard<std::mutex> lock(mutex); }
        changed.notify_all();
    }

    bool is_closed() {
        std::lock_guard<std::mutex> lock(mutex);
        return closed;
    }

    void refuse(append_handler& done) {
        append_failures.fetch_add(1, std::memory_order_relaxed);
        done(make_error_code(errc::bus_unavailable), {});
    }

    // Answers a command append() accepted (room is made first: `done` may append again).
    void answer(append_handler& done, std::string_view entry_id) {
        outstanding.fetch_sub(1, std::memory_order_acq_rel);
        if (entry_id.empty()) {
            refuse(done);
        } else {
            appended.fetch_add(1, std::memory_order_relaxed);
            done({}, entry_id);
        }
    }

    // Answers every command in flight as not appended.
    void fail_flying() {
        auto flown = std::move(flying);
        flying.clear();
        for (auto& [tag, f] : flown) answer(f.done, {});
    }

    // Answers every command queued or in flight as not appended.
    void fail_all() {
        std::vector<queued_command> pending;
        {
            std::lock_guard<std::mutex> lock(mutex);
            pending.swap(queued);
        }
        fail_flying();
        for (auto& q : pending) answer(q.done, {});
    }

    // `<ms>-<seq>`, increasing within this bus like a Redis stream id.
    std::string next_entry_id() {
        const auto now = detail::unix_now_ms();
        if (now > last_id_ms) {
            last_id_ms = now;
            last_id_seq = 0;
        } else {
            ++last_id_seq;
        }
        return std::to_string(last_id_ms) + "-" + std::to_string(last_id_seq);
    }

    void run();
    std::string serve(a::link& l);
    std::string publish_queued(a::link& l);
    std::string handle(a::link& l, const amqp_frame_t& frame);
    void confirm(std::uint64_t tag, bool multiple, bool ok);
    void deliver(const std::string& body);
};

void amqp_bus::state::run() {
    const auto heartbeat_s =
        static_cast<int>(std::max<std::int64_t>(1, options.timeout.count() / 3000));
    while (!is_closed()) {
        a::link l;
        const std::string opened =
            l.open(where, options.timeout, heartbeat_s, options.command_exchange);
        std::string why = opened;
        if (opened.empty()) {
            reconnect_backoff.reset();
            if (ever_up) reconnects.fetch_add(1, std::memory_order_relaxed);
            log(log_level::info, ever_up ? "connection re-established" : "connection up");
            ever_up = true;
            set_up(true);
            why = serve(l);
            set_up(false);
            fail_all();
            if (why.empty()) {  // closed
                l.close(std::chrono::milliseconds(500));
                break;
            }
            log(log_level::warn,
                "connection lost (" + why + "); commands get bus_unavailable until it is back");
        } else {
            fail_all();
            const int failed = reconnect_backoff.attempts();
            // The first failure of an outage, then a reminder now and then.
            if (failed == 0 || failed % 50 == 0) {
                log(log_level::warn, "cannot connect (" + why + "); retrying, " +
                                         std::to_string(failed + 1) + " attempt(s)");
            }
        }
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait_for(lock, reconnect_backoff.next(), [this] { return closed; });
    }
    set_up(false);
    fail_all();
}

// Until the link breaks (returns why) or the bus is closed (returns "").
std::string amqp_bus::state::serve(a::link& l) {
    update_in = incoming{};
    return_in = incoming{};
    redeclare = false;
    stalled_since_ms = 0;
    next_tag = 0;  // a new channel's delivery tags start at 1
    for (;;) {
        bool want_consume = false;
        bool want_cancel = false;
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (closed) return {};
            want_consume = consume_wanted;
            want_cancel = cancel_wanted;
        }
        if (want_consume && !want_cancel && !consuming.load(std::memory_order_acquire)) {
            if (auto why = l.consume(options.updates_exchange); !why.empty()) return why;
            if (ever_consumed) {
                std::lock_guard<std::mutex> lock(handler_mutex);
                if (on_resubscribed && listening.load(std::memory_order_acquire)) {
                    on_resubscribed();
                }
            }
            ever_consumed = true;
            consuming.store(true, std::memory_order_release);
            set_up(true);  // wakes wait_connected
        } else if (want_cancel && consuming.load(std::memory_order_acquire)) {
            if (auto why = l.cancel(); !why.empty()) return why;
            consuming.store(false, std::memory_order_release);
        }
        if (redeclare) {
            redeclare = false;
            if (auto why = l.declare_commands(options.command_exchange); !why.empty()) return why;
        }
        if (auto why = publish_queued(l); !why.empty()) return why;

        // Everything the link already holds or the socket has, without waiting.
        for (;;) {
            amqp_frame_t frame;
            const int status = l.next_frame(frame, std::chrono::milliseconds(0));
            if (status == AMQP_STATUS_TIMEOUT) break;
            if (status != AMQP_STATUS_OK) return a::describe_status(status);
            if (auto why = handle(l, frame); !why.empty()) return why;
        }
        l.release();

        // A confirm overdue, or a socket that takes nothing for as long, means a broker that
        // no longer answers.
        std::int64_t wait_ms = 200;  // also paces the heartbeats rabbitmq-c sends
        const auto now = detail::steady_now_ms();
        if (!flying.empty()) {
            const auto oldest = flying.begin()->second.deadline_ms;
            if (now >= oldest) return "no publisher confirm within the timeout";
            wait_ms = std::min(wait_ms, oldest - now);
        }
        if (stalled_since_ms != 0) {
            const auto until = stalled_since_ms + options.timeout.count();
            if (now >= until) return "the broker read no command within the timeout";
            wait_ms = std::min(wait_ms, until - now);
        }
        if (l.buffered()) continue;
        const short events = stalled_since_ms != 0 ? POLLIN | POLLOUT : POLLIN;
        pollfd fds[2] = {{l.fd(), events, 0}, {wake_fd, POLLIN, 0}};
        if (::poll(fds, 2, static_cast<int>(wait_ms)) < 0 && errno != EINTR) {
            return "poll failed";
        }
        if ((fds[1].revents & POLLIN) != 0) {
            std::uint64_t count = 0;
            [[maybe_unused]] const auto n = ::read(wake_fd, &count, sizeof count);
        }
    }
}

std::string amqp_bus::state::publish_queued(a::link& l) {
    std::vector<queued_command> batch;
    {
        std::lock_guard<std::mutex> lock(mutex);
        batch.swap(queued);
    }
    if (blocked.load(std::memory_order_acquire)) {
        // Handed over just before the block: the broker would not read them.
        for (auto& q : batch) answer(q.done, {});
        return {};
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!writable(l.fd())) {
            // The rest waits, ahead of what came meanwhile, until the socket takes more.
            if (stalled_since_ms == 0) stalled_since_ms = detail::steady_now_ms();
            std::lock_guard<std::mutex> lock(mutex);
            queued.insert(queued.begin(),
                          std::make_move_iterator(batch.begin() + static_cast<std::ptrdiff_t>(i)),
                          std::make_move_iterator(batch.end()));
            return {};
        }
        stalled_since_ms = 0;
        const envelope& c = batch[i].command;
        const auto& o = c.origin;
        const std::string entry_id = next_entry_id();
        const std::string message_id = options.gateway_id + "/" + entry_id;
        amqp_table_entry_t headers[10];
        int count = 0;
        headers[count++] = text_entry("type", c.type);
        headers[count++] = text_entry("codec", bus_codec_name(c.format));
        headers[count++] = text_entry("correlation_id", c.correlation_id);
        headers[count++] = text_entry("player_id", o.player_id);
        headers[count++] = text_entry("connection_id", o.connection_id);
        headers[count++] = text_entry("gateway_id", options.gateway_id);
        headers[count++] = text_entry("client", bus_client_name(o.client));
        amqp_table_entry_t ts{};
        ts.key = amqp_cstring_bytes("ts_ms");
        ts.value.kind = AMQP_FIELD_KIND_I64;
        ts.value.value.i64 = o.accepted_at_ms;
        headers[count++] = ts;
        if (!c.payload_codec.empty()) {
            headers[count++] = text_entry("payload_codec", c.payload_codec);
        }
        if (!c.traceparent.empty()) headers[count++] = text_entry("traceparent", c.traceparent);

        amqp_basic_properties_t props{};
        props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_HEADERS_FLAG |
                       AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                       AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_APP_ID_FLAG;
        props.content_type = bytes(content_type(c.format));
        props.headers.num_entries = count;
        props.headers.entries = headers;
        props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
        props.message_id = bytes(message_id);
        props.timestamp = static_cast<std::uint64_t>(o.accepted_at_ms / 1000);
        props.type = bytes(c.type);
        props.app_id = amqp_cstring_bytes("gatehouse");
        if (!c.correlation_id.empty()) {
            props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
            props.correlation_id = bytes(c.correlation_id);
        }
        if (auto why = l.publish(options.command_exchange, c.type, props, c.payload);
            !why.empty()) {
            // This one and the rest of the batch are answered by fail_all(), with what flies.
            std::lock_guard<std::mutex> lock(mutex);
            for (std::size_t j = i; j < batch.size(); ++j) queued.push_back(std::move(batch[j]));
            return why;
        }
        in_flight f;
        f.entry_id = entry_id;
        f.done = std::move(batch[i].done);
        f.deadline_ms = detail::steady_now_ms() + options.timeout.count();
        flying.emplace(++next_tag, std::move(f));
    }
    return {};
}

void amqp_bus::state::confirm(std::uint64_t tag, bool multiple, bool ok) {
    // Answered after leaving the map: a handler may close the bus.
    std::vector<in_flight> answered;
    if (multiple) {
        const auto end = flying.upper_bound(tag);
        for (auto it = flying.begin(); it != end; ++it) answered.push_back(std::move(it->second));
        flying.erase(flying.begin(), end);
    } else if (const auto it = flying.find(tag); it != flying.end()) {
        answered.push_back(std::move(it->second));
        flying.erase(it);
    }
    for (auto& f : answered) answer(f.done, ok && !f.returned ? f.entry_id : std::string{});
}

void amqp_bus::state::deliver(const std::string& body) {
    std::lock_guard<std::mutex> lock(handler_mutex);
    // stop() made on this thread (from a command's callback) cannot clear the handler; it
    // turns `listening` off instead.
    if (!on_message || !listening.load(std::memory_order_acquire)) return;
    updates_received.fetch_add(1, std::memory_order_relaxed);
    on_message(body);
}

std::string amqp_bus::state::handle(a::link& l, const amqp_frame_t& frame) {
    (void)l;
    if (frame.frame_type == AMQP_FRAME_METHOD) {
        const auto id = frame.payload.method.id;
        const void* m = frame.payload.method.decoded;
        switch (id) {
            case AMQP_BASIC_ACK_METHOD: {
                const auto* ack = static_cast<const amqp_basic_ack_t*>(m);
                confirm(ack->delivery_tag, ack->multiple != 0, true);
                return {};
            }
            case AMQP_BASIC_NACK_METHOD: {
                const auto* nack = static_cast<const amqp_basic_nack_t*>(m);
                log(log_level::warn, "the broker nacked a command (an internal broker error)");
                confirm(nack->delivery_tag, nack->multiple != 0, false);
                return {};
            }
            case AMQP_BASIC_RETURN_METHOD:
                return_in = incoming{};
                return_in.active = true;
                return {};
            case AMQP_BASIC_DELIVER_METHOD:
                update_in.active = true;
                update_in.header_seen = false;
                update_in.skipped = false;
                update_in.size = 0;
                update_in.body.clear();  // keeps its capacity for the next message
                return {};
            case AMQP_BASIC_CANCEL_METHOD:
                // The broker ended the consumer (its queue was deleted): consume anew.
                log(log_level::warn, "the broker cancelled the updates consumer; resubscribing");
                consuming.store(false, std::memory_order_release);
                return "updates consumer cancelled by the broker";
            case AMQP_BASIC_CANCEL_OK_METHOD: return {};
            case AMQP_CONNECTION_CLOSE_METHOD: {
                const auto* c = static_cast<const amqp_connection_close_t*>(m);
                return "broker closed the connection (" + std::to_string(c->reply_code) + " " +
                       std::string(static_cast<const char*>(c->reply_text.bytes),
                                   c->reply_text.len) +
                       ")";
            }
            case AMQP_CHANNEL_CLOSE_METHOD: {
                const auto* c = static_cast<const amqp_channel_close_t*>(m);
                return "broker closed channel " + std::to_string(frame.channel) + " (" +
                       std::to_string(c->reply_code) + " " +
                       std::string(static_cast<const char*>(c->reply_text.bytes),
                                   c->reply_text.len) +
                       ")";
            }
            case AMQP_CONNECTION_BLOCKED_METHOD:
                // The broker reads nothing more from us: the commands in flight are answered
                // now (their confirms, should they come after the alarm, are ignored), new
                // ones are refused, and /ready says 503, until the alarm clears.
                log(log_level::warn,
                    "the broker blocked publishing (a memory or disk alarm): commands get "
                    "bus_unavailable until it unblocks");
                blocked.store(true, std::memory_order_release);
                set_changed();
                fail_flying();
                return {};
            case AMQP_CONNECTION_UNBLOCKED_METHOD:
                log(log_level::info, "the broker unblocked publishing");
                blocked.store(false, std::memory_order_release);
                set_changed();
                return {};
            default: return {};
        }
    }
    incoming& in = frame.channel == a::updates_channel ? update_in : return_in;
    if (!in.active) return {};  // content of a method we do not follow
    if (frame.frame_type == AMQP_FRAME_HEADER) {
        in.header_seen = true;
        in.size = frame.payload.properties.body_size;
        if (&in == &update_in && in.size > max_update_bytes) {
            in.skipped = true;
            log(log_level::warn, "dropped an update of " + std::to_string(in.size) +
                                     " bytes (more than " + std::to_string(max_update_bytes) + ")");
        }
        if (&in == &return_in) {
            // A returned command is named by its message id; its confirm follows.
            const auto* p =
                static_cast<const amqp_basic_properties_t*>(frame.payload.properties.decoded);
            if (p != nullptr && (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) {
                const std::string id(static_cast<const char*>(p->message_id.bytes),
                                     p->message_id.len);
                for (auto& [tag, f] : flying) {
                    if (options.gateway_id + "/" + f.entry_id == id) f.returned = true;
                }
            }
            log(log_level::error,
                "the broker returned a command as unroutable (was the command queue or its "
                "binding deleted?); it gets bus_unavailable, and the queue is declared again");
            redeclare = true;
        }
    } else if (frame.frame_type == AMQP_FRAME_BODY && in.header_seen) {
        if (&in == &update_in && !in.skipped) {
            in.body.append(static_cast<const char*>(frame.payload.body_fragment.bytes),
                           frame.payload.body_fragment.len);
        } else {
            in.size -= std::min<std::uint64_t>(in.size, frame.payload.body_fragment.len);
        }
    }
    if (!in.header_seen) return {};
    const bool complete =
        &in == &update_in && !in.skipped ? in.body.size() >= in.size : in.size == 0;
    if (complete) {
        in.active = false;
        if (&in == &update_in && !in.skipped) deliver(in.body);
        if (in.body.capacity() > (1u << 20)) std::string().swap(in.body);  // after a large one
    }
    return {};
}

std::error_code check_amqp_url(std::string_view url) {
    a::url where;
    return a::parse_url(url, where);
}

amqp_bus::amqp_bus(amqp_bus_options options) {
    a::url where;
    if (a::parse_url(options.url, where)) {
        throw std::invalid_argument(
            "amqp_bus: url is not amqp://[user[:password]@]host[:port][/vhost]");
    }
    for (const auto* name : {&options.command_exchange, &options.updates_exchange}) {
        if (name->empty() || name->size() > 255) {
            throw std::invalid_argument(
                "amqp_bus: command_exchange and updates_exchange must be 1-255 bytes");
        }
    }
    if (options.timeout.count() <= 0 || options.reconnect_min.count() <= 0 ||
        options.reconnect_max < options.reconnect_min) {
        throw std::invalid_argument(
            "amqp_bus: timeout and reconnect_min must be positive, reconnect_max >= "
            "reconnect_min");
    }
    if (options.max_in_flight == 0) {
        throw std::invalid_argument("amqp_bus: max_in_flight must be positive");
    }
    state_ = std::make_shared<state>(std::move(options), std::move(where));
    state_->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (state_->wake_fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    state_->thread = std::thread([self = state_] { self->run(); });
    state_->io_id = state_->thread.get_id();
}

amqp_bus::~amqp_bus() {
    try {
        close();
    } catch (...) {
        // close() throws only when the system cannot join a thread; nobody to tell.
    }
}

void amqp_bus::close() {
    auto& s = *state_;
    {
        std::lock_guard<std::mutex> lock(s.mutex);
        if (s.closed) return;
        s.closed = true;
    }
    s.changed.notify_all();
    s.wake();
    stop();
    if (s.io_id == std::this_thread::get_id()) {
        s.thread.detach();  // closed from a callback: the thread ends after it returns
    } else if (s.thread.joinable()) {
        s.thread.join();
    }
}

void amqp_bus::append(const envelope& command, append_handler done) {
    auto& s = *state_;
    if (s.up.load(std::memory_order_acquire) && !s.blocked.load(std::memory_order_acquire)) {
        if (s.outstanding.fetch_add(1, std::memory_order_acq_rel) < s.options.max_in_flight) {
            state::queued_command q{command, std::move(done)};  // copied outside the lock
            std::unique_lock<std::mutex> lock(s.mutex);
            if (!s.closed) {
                const bool first = s.queued.empty();
                s.queued.push_back(std::move(q));
                lock.unlock();
                if (first) s.wake();  // later ones ride on the same wake-up
                return;
            }
            done = std::move(q.done);
        }
        s.outstanding.fetch_sub(1, std::memory_order_acq_rel);
    }
    s.refuse(done);
}

bool amqp_bus::connected() const noexcept {
    const auto& s = *state_;
    return s.up.load(std::memory_order_acquire) && !s.blocked.load(std::memory_order_acquire) &&
           (!s.listening.load(std::memory_order_acquire) ||
            s.consuming.load(std::memory_order_acquire));
}

void amqp_bus::start(update_handler on_message) {
    auto& s = *state_;
    {
        std::lock_guard<std::mutex> handlers(s.handler_mutex);
        std::lock_guard<std::mutex> lock(s.mutex);
        if (s.consume_wanted || s.cancel_wanted) return;
        s.on_message = std::move(on_message);
        s.consume_wanted = true;
        s.listening.store(true, std::memory_order_release);
    }
    s.wake();
}

void amqp_bus::on_resubscribed(resubscribed_handler handler) {
    std::lock_guard<std::mutex> lock(state_->handler_mutex);
    state_->on_resubscribed = std::move(handler);
}

void amqp_bus::stop() {
    auto& s = *state_;
    if (s.io_id == std::this_thread::get_id()) {
        // On the I/O thread, maybe inside a handler: flags only (deliver() checks them).
        std::lock_guard<std::mutex> lock(s.mutex);
        s.cancel_wanted = true;
        s.listening.store(false, std::memory_order_release);
        return;
    }
    {
        std::lock_guard<std::mutex> handlers(s.handler_mutex);  // waits for a running handler
        s.on_message = nullptr;
        s.on_resubscribed = nullptr;
        std::lock_guard<std::mutex> lock(s.mutex);
        s.cancel_wanted = true;
        s.listening.store(false, std::memory_order_release);
    }
    s.wake();
}

bool amqp_bus::wait_connected(std::chrono::milliseconds limit) const {
    auto& s = *state_;
    std::unique_lock<std::mutex> lock(s.mutex);
    return s.changed.wait_for(lock, limit, [this] { return connected(); });
}

amqp_bus_stats amqp_bus::stats() const noexcept {
    const auto& s = *state_;
    amqp_bus_stats out;
    out.appended = s.appended.load(std::memory_order_relaxed);
    out.append_failures = s.append_failures.load(std::memory_order_relaxed);
    out.updates_received = s.updates_received.load(std::memory_order_relaxed);
    out.reconnects = s.reconnects.load(std::memory_order_relaxed);
    return out;
}

const std::string& amqp_bus::redacted_url() const noexcept { return state_->redacted; }

}  // namespace gatehouse
