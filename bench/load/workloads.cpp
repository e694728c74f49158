#include "workloads.hpp"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "amqp_publisher.hpp"
#include "event_loop.hpp"
#include "gatehouse/client/codec.hpp"
#include "histogram.hpp"
#include "jwt.hpp"
#include "redis_pipe.hpp"
#include "ws_connection.hpp"

namespace gatehouse_load {
namespace {

namespace gc = gatehouse::client;

constexpr long token_ttl_s = 3600;
// A generous bound on how long opening every connection may take (10k connections open in a
// few seconds on loopback).
constexpr double open_timeout_s = 60;

std::int64_t to_ns(double seconds) { return static_cast<std::int64_t>(seconds * 1e9); }

// ---------------------------------------------------------------------------------------------
// Measuring the generator and the server

double process_cpu_s() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// utime + stime of every thread of `pid`, in seconds; -1 when unreadable.
double server_cpu_s(int pid) {
    if (pid <= 0) return -1;
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) return -1;
    // The command name (field 2) may hold spaces; fields are counted after its ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
        if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// VmRSS of `pid` in bytes; -1 when unreadable.
long long server_rss_bytes(int pid) {
    if (pid <= 0) return -1;
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
    }
    return -1;
}

// CPU used by the generator, the server and redis-server over the measured window, each as a
// fraction of one core (1.0 = one core busy all along). Redis shares the generator's core in
// the matrix, so the two together say whether the client side was the limit.
class cpu_meter {
public:
    cpu_meter(int server_pid, int redis_pid) : server_pid_(server_pid), redis_pid_(redis_pid) {}
    void start() {
        wall_ = now_ns();
        self_ = process_cpu_s();
        server_ = server_cpu_s(server_pid_);
        redis_ = server_cpu_s(redis_pid_);
    }
    void stop() {
        const double wall = static_cast<double>(now_ns() - wall_) / 1e9;
        if (wall <= 0) return;
        gen_ = (process_cpu_s() - self_) / wall;
        srv_ = fraction(server_cpu_s(server_pid_), server_, wall);
        rds_ = fraction(server_cpu_s(redis_pid_), redis_, wall);
    }
    double generator() const { return gen_; }
    double server() const { return srv_; }
    double redis() const { return rds_; }

private:
    static double fraction(double now, double then, double wall) {
        return (now >= 0 && then >= 0) ? (now - then) / wall : -1;
    }
    int server_pid_, redis_pid_;
    std::int64_t wall_ = 0;
    double self_ = 0, server_ = -1, redis_ = -1, gen_ = 0, srv_ = -1, rds_ = -1;
};

// ---------------------------------------------------------------------------------------------
// The JSON line

class json_line {
public:
    json_line& field(const char* key, const std::string& v) {
        key_(key);
        out_ += '"';
        for (const char c : v) {
            if (c == '"' || c == '\\') out_ += '\\';
            if (static_cast<unsigned char>(c) >= 0x20) out_ += c;
        }
        out_ += '"';
        return *this;
    }
    json_line& field(const char* key, const char* v) { return field(key, std::string(v)); }
    json_line& field(const char* key, double v) {
        key_(key);
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.3f", v);
        out_ += buf;
        return *this;
    }
    json_line& field(const char* key, std::uint64_t v) {
        key_(key);
        out_ += std::to_string(v);
        return *this;
    }
    json_line& field(const char* key, long long v) {
        key_(key);
        out_ += std::to_string(v);
        return *this;
    }
    json_line& field(const char* key, bool v) {
        key_(key);
        out_ += v ? "true" : "false";
        return *this;
    }
    json_line& latency(const char* prefix, const latency_histogram& h) {
        const std::string p(prefix);
        field((p + "p50_us").c_str(), h.quantile_us(0.50));
        field((p + "p99_us").c_str(), h.quantile_us(0.99));
        field((p + "p999_us").c_str(), h.quantile_us(0.999));
        return *this;
    }
    void print() {
        out_ += "}\n";
        std::fputs(out_.c_str(), stdout);
        std::fflush(stdout);
    }

private:
    void key_(const char* key) {
        out_ += out_.size() == 1 ? "\"" : ",\"";
        out_ += key;
        out_ += "\":";
    }
    std::string out_ = "{";
};

// ---------------------------------------------------------------------------------------------
// Reading our own payloads back

// The integer after `"key":` in a JSON object's text. Both servers re-serialise payloads
// (key order and spacing may change), so the key is searched, not expected at a position.
bool find_int(std::string_view json, std::string_view key, std::int64_t& out) {
    std::size_t from = 0;
    while (true) {
        const auto at = json.find(key, from);
        if (at == std::string_view::npos) return false;
        from = at + key.size();
        if (at == 0 || json[at - 1] != '"' || from >= json.size() || json[from] != '"') continue;
        std::size_t i = from + 1;
        while (i < json.size() && (json[i] == ' ' || json[i] == ':')) ++i;
        bool neg = false;
        if (i < json.size() && json[i] == '-') {
            neg = true;
            ++i;
        }
        if (i >= json.size() || json[i] < '0' || json[i] > '9') return false;
        std::int64_t v = 0;
        while (i < json.size() && json[i] >= '0' && json[i] <= '9') v = v * 10 + (json[i++] - '0');
        out = neg ? -v : v;
        return true;
    }
}

// The sequence number in a correlation id of ours: one letter, then digits.
bool seq_of(std::string_view correlation_id, std::uint64_t& out) {
    if (correlation_id.size() < 2) return false;
    std::uint64_t v = 0;
    for (std::size_t i = 1; i < correlation_id.size(); ++i) {
        const char c = correlation_id[i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    out = v;
    return true;
}

// ---------------------------------------------------------------------------------------------
// A set of client connections and what every workload counts about them

class session : public ws_listener {
public:
    explicit session(const options& o) : o_(o) {
        addr_.sin_family = AF_INET;
        addr_.sin_port = htons(o.port);
        addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        host_ = "127.0.0.1:" + std::to_string(o.port);
    }

    // Opens `n` connections, at most o.concurrency attempts at a time, each as its own player
    // (o.player_prefix + index), and runs the loop until every one has its welcome or
    // `timeout_s` passed. Returns true when all n were welcomed.
    bool open(std::size_t n, double timeout_s) {
        std::vector<std::string> paths;
        paths.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            paths.push_back("/ws/player/" + mint_hs256(o_.secret,
                                                       o_.player_prefix + std::to_string(i),
                                                       token_ttl_s));
        }
        conns_.reserve(n);
        welcomed_flag_.assign(n, 0);
        open_started_ = now_ns();
        const std::int64_t deadline = open_started_ + to_ns(timeout_s);
        std::size_t started = 0;
        while (welcomed_ + failed_opens_ < n && now_ns() < deadline) {
            while (started < n && started - welcomed_ - failed_opens_ < o_.concurrency) {
                conns_.push_back(std::make_unique<ws_connection>(loop_, *this, started));
                const auto& sources = o_.source_addresses;
                const in_addr* source =
                    sources.empty() ? nullptr : &sources[started % sources.size()];
                if (!conns_.back()->start(addr_, host_, paths[started], source)) {
                    ++failed_opens_;
                }
                ++started;
            }
            loop_.run_once(5);
        }
        last_welcome_ = last_welcome_ == 0 ? now_ns() : last_welcome_;
        return welcomed_ == n;
    }

    void on_open(ws_connection& /*c*/) override {}

    void on_message(ws_connection& c, std::string_view message, bool text) override {
        gc::envelope env;
        if (!text || gc::decode(gc::wire_format::json, message, env) != gc::status::ok) {
            ++bad_frames_;
            return;
        }
        const std::size_t i = c.index();
        if (!welcomed_flag_[i]) {
            if (env.type() != "welcome") {
                ++bad_frames_;
                return;
            }
            welcomed_flag_[i] = 1;
            ++welcomed_;
            last_welcome_ = now_ns();
            handshake_.record(last_welcome_ - c.started_at());
            on_welcome(c);
            return;
        }
        if (env.type() == "error") {
            ++error_frames_;
            if (first_error_.empty()) first_error_.assign(env.payload());
            return;
        }
        handle(c, env);
    }

    void on_closed(ws_connection& c, const char* why) override {
        if (welcomed_flag_.size() > c.index() && welcomed_flag_[c.index()]) {
            ++closed_;
        } else {
            ++failed_opens_;
        }
        if (first_close_.empty()) first_close_ = why;
    }

    // Runs the loop until `done()` or the deadline; returns done().
    template <typename Done>
    bool drain(double timeout_s, Done done) {
        const std::int64_t deadline = now_ns() + to_ns(timeout_s);
        while (!done() && now_ns() < deadline) loop_.run_once(5);
        return done();
    }

    void close_all() {
        for (auto& c : conns_) c->close_now();
    }

    // Fields every workload reports.
    void report_common(json_line& j, const cpu_meter& cpu) const {
        j.field("welcomed", static_cast<std::uint64_t>(welcomed_))
            .field("failed_opens", static_cast<std::uint64_t>(failed_opens_))
            .field("closed", static_cast<std::uint64_t>(closed_))
            .field("error_frames", static_cast<std::uint64_t>(error_frames_))
            .field("bad_frames", static_cast<std::uint64_t>(bad_frames_))
            .field("gen_cpu", cpu.generator())
            .field("server_cpu", cpu.server())
            .field("redis_cpu", cpu.redis());
        if (!first_error_.empty()) j.field("first_error", first_error_);
        if (!first_close_.empty()) j.field("first_close", first_close_);
    }

    bool clean() const {
        return failed_opens_ == 0 && closed_ == 0 && error_frames_ == 0 && bad_frames_ == 0;
    }

protected:
    virtual void on_welcome(ws_connection& /*c*/) {}
    virtual void handle(ws_connection& c, const gc::envelope& env) = 0;

    // Encodes a command with the client codec and sends it as a text frame.
    void send_command(ws_connection& c, std::string_view type, std::string_view payload,
                      std::string_view correlation_id) {
        gc::envelope env;
        env.set_type(type);
        env.set_correlation_id(correlation_id);
        env.set_payload(gc::payload_format::json, payload);
        const auto r = gc::encode(gc::wire_format::json, env, frame_, sizeof frame_);
        if (r.code != gc::status::ok) {
            ++bad_frames_;
            return;
        }
        c.send_text(std::string_view(frame_, r.size));
    }

    const options& o_;
    event_loop loop_;
    std::vector<std::unique_ptr<ws_connection>> conns_;
    std::vector<char> welcomed_flag_;
    std::size_t welcomed_ = 0;
    std::size_t failed_opens_ = 0;
    std::size_t closed_ = 0;
    std::size_t error_frames_ = 0;
    std::size_t bad_frames_ = 0;
    std::string first_error_;
    std::string first_close_;
    std::int64_t open_started_ = 0;
    std::int64_t last_welcome_ = 0;
    latency_histogram handshake_;

private:
    sockaddr_in addr_{};
    std::string host_;
    char frame_[4096];
};

// ---------------------------------------------------------------------------------------------
// ingress: N connections, each keeping W commands outstanding; acks/s, send-to-ack latency.

class ingress final : public session {
public:
    using session::session;

    bool run() {
        const std::size_t n = o_.connections ? o_.connections : 100;
        const std::size_t w = o_.window ? o_.window : 8;
        cpu_meter cpu(o_.server_pid, o_.redis_pid);
        bool ok = open(n, open_timeout_s);
        const std::int64_t start = now_ns();
        measure_from_ = start + to_ns(o_.warmup_s);
        measure_to_ = measure_from_ + to_ns(o_.duration_s);
        bool measuring = false;
        if (ok) {
            for (auto& c : conns_) {
                for (std::size_t k = 0; k < w; ++k) send_next(*c);
            }
            loop_.flush_now();
            while (now_ns() < measure_to_ && clean()) {
                loop_.run_once(5);
                if (!measuring && now_ns() >= measure_from_) {
                    cpu.start();
                    measuring = true;
                }
            }
            if (measuring) cpu.stop();
            sending_ = false;
            drain(o_.drain_s, [&] { return acks_ + errors_() >= sent_at_.size(); });
        }
        const std::uint64_t unanswered = sent_at_.size() - acks_ - errors_();
        ok = ok && clean() && unanswered == 0 && window_acks_ > 0;
        json_line j;
        j.field("workload", "ingress")
            .field("server", o_.label)
            .field("connections", static_cast<std::uint64_t>(n))
            .field("window", static_cast<std::uint64_t>(w))
            .field("warmup_s", o_.warmup_s)
            .field("duration_s", o_.duration_s)
            .field("sent", static_cast<std::uint64_t>(sent_at_.size()))
            .field("acks", static_cast<std::uint64_t>(acks_))
            .field("unanswered", unanswered)
            .field("acks_per_s", static_cast<double>(window_acks_) / o_.duration_s)
            .latency("", latency_);
        report_common(j, cpu);
        j.field("ok", ok).print();
        close_all();
        return ok;
    }

private:
    std::uint64_t errors_() const { return error_frames_; }

    void send_next(ws_connection& c) {
        const std::uint64_t seq = sent_at_.size();
        const int len =
            std::snprintf(corr_, sizeof corr_, "c%llu", static_cast<unsigned long long>(seq));
        sent_at_.push_back(now_ns());
        send_command(c, "bench.cmd", payload_,
                     std::string_view(corr_, static_cast<std::size_t>(len)));
    }

    void handle(ws_connection& c, const gc::envelope& env) override {
        std::uint64_t seq = 0;
        if (env.type() != "ack" || !seq_of(env.correlation_id(), seq) || seq >= sent_at_.size()) {
            ++bad_frames_;
            return;
        }
        const std::int64_t now = now_ns();
        ++acks_;
        if (sent_at_[seq] >= measure_from_ && sent_at_[seq] < measure_to_) {
            latency_.record(now - sent_at_[seq]);
        }
        if (now >= measure_from_ && now < measure_to_) ++window_acks_;
        if (sending_ && now < measure_to_) send_next(c);
    }

    static constexpr std::string_view payload_ =
        R"({"x":12.5,"y":-3.25,"facing":"north","run":true})";
    std::vector<std::int64_t> sent_at_;
    std::uint64_t acks_ = 0;
    std::uint64_t window_acks_ = 0;
    std::int64_t measure_from_ = 0;
    std::int64_t measure_to_ = 0;
    bool sending_ = true;
    latency_histogram latency_;
    char corr_[32];
};

// ---------------------------------------------------------------------------------------------
// fanout / broadcast: N idle connections; updates PUBLISHed with a window of W in flight.

class fanout final : public session {
public:
    fanout(const options& o, bool broadcast) : session(o), broadcast_(broadcast) {}

    bool run() {
        const std::size_t n = o_.connections ? o_.connections : 1000;
        const std::size_t w = o_.window ? o_.window : (broadcast_ ? 16 : 1000);
        n_ = n;
        cpu_meter cpu(o_.server_pid, o_.redis_pid);
        redis_pipe redis(loop_);
        amqp_publisher amqp;
        const bool on_amqp = o_.amqp_port != 0;
        std::string setup_error;
        bool ok = open(n, open_timeout_s);
        if (on_amqp) {
            // The caller waited for the server's /ready, which means its queue is bound.
            if (ok && !amqp.connect(o_.amqp_port, o_.amqp_exchange)) {
                setup_error = "amqp: " + amqp.error();
            }
        } else {
            if (ok && !redis.connect(o_.redis_port)) setup_error = "redis: " + redis.error();
            // Both servers subscribe once; a publish before that would be lost for no fault
            // of theirs.
            if (ok && setup_error.empty() && !redis.wait_subscribers(o_.channel, 1, 10000)) {
                setup_error = redis.error();
            }
            if (ok && setup_error.empty() &&
                !redis.start([&](const redisReply& r) { on_publish_reply(r); })) {
                setup_error = "redis: cannot switch to nonblocking";
            }
        }
        ok = ok && setup_error.empty();
        const std::int64_t start = now_ns();
        measure_from_ = start + to_ns(o_.warmup_s);
        measure_to_ = measure_from_ + to_ns(o_.duration_s);
        t0_ = start;
        bool measuring = false;
        if (ok) {
            std::string msg;
            while (now_ns() < measure_to_ && clean() && !redis.broken() && !amqp.broken()) {
                // Keep W updates in flight: published, not yet received (by every connection,
                // for broadcasts).
                while (published_ - completed_ < w) {
                    format(msg);
                    if (on_amqp) {
                        amqp.publish(msg);
                    } else {
                        redis.publish(o_.channel, msg, o_.publish_via_fcall);
                    }
                }
                loop_.flush_now();
                loop_.run_once(5);
                if (!measuring && now_ns() >= measure_from_) {
                    cpu.start();
                    measuring = true;
                }
            }
            if (measuring) cpu.stop();
            drain(o_.drain_s, [&] { return completed_ >= published_ || !clean(); });
            if (redis.broken()) setup_error = "redis: " + redis.error();
            if (amqp.broken()) setup_error = "amqp: " + amqp.error();
        }
        const std::uint64_t expected = published_ * (broadcast_ ? n : 1);
        const std::uint64_t lost = expected - received_;
        ok = ok && clean() && lost == 0 && duplicates_ == 0 && misrouted_ == 0 &&
             unsubscribed_ == 0 && window_received_ > 0;
        json_line j;
        j.field("workload", broadcast_ ? "broadcast" : "fanout")
            .field("server", o_.label)
            .field("connections", static_cast<std::uint64_t>(n))
            .field("window", static_cast<std::uint64_t>(w))
            .field("warmup_s", o_.warmup_s)
            .field("duration_s", o_.duration_s)
            .field("published", published_)
            .field("delivered", received_)
            .field("lost", lost)
            .field("duplicates", duplicates_)
            .field("misrouted", misrouted_)
            .field("publish_no_subscriber", unsubscribed_)
            .field("publish_via", on_amqp                ? "amqp"
                                  : o_.publish_via_fcall ? "fcall"
                                                         : "publish")
            .field(broadcast_ ? "deliveries_per_s" : "delivered_per_s",
                   static_cast<double>(window_received_) / o_.duration_s);
        if (broadcast_) {
            j.field("broadcasts_per_s", static_cast<double>(window_completed_) / o_.duration_s);
        }
        j.latency("", latency_);
        report_common(j, cpu);
        if (!setup_error.empty()) j.field("setup_error", setup_error);
        j.field("ok", ok).print();
        close_all();
        return ok;
    }

private:
    // The next update's JSON into `msg`.
    void format(std::string& msg) {
        const std::uint64_t seq = published_++;
        const long long t = now_ns() - t0_;
        char buf[160];
        int len = 0;
        if (broadcast_) {
            len = std::snprintf(
                buf, sizeof buf,
                R"({"broadcast":true,"type":"bench.bcast","payload":{"seq":%llu,"t":%lld}})",
                static_cast<unsigned long long>(seq), t);
            counts_.push_back(0);
        } else {
            len = std::snprintf(
                buf, sizeof buf,
                R"({"player_id":"%s%llu","type":"bench.update","payload":{"seq":%llu,"t":%lld}})",
                o_.player_prefix.c_str(), static_cast<unsigned long long>(seq % n_),
                static_cast<unsigned long long>(seq), t);
            counts_.push_back(0);
        }
        msg.assign(buf, static_cast<std::size_t>(len));
    }

    // PUBLISH answers how many subscribers got the message; FCALL gatehouse_publish answers
    // the update ids it gave (an array), or an error (no function loaded, say).
    void on_publish_reply(const redisReply& r) {
        const bool ok = o_.publish_via_fcall ? r.type == REDIS_REPLY_ARRAY
                                             : r.type == REDIS_REPLY_INTEGER && r.integer >= 1;
        if (!ok) ++unsubscribed_;
    }

    void handle(ws_connection& c, const gc::envelope& env) override {
        std::int64_t seq = 0, t = 0;
        if (env.type() != (broadcast_ ? "bench.bcast" : "bench.update") ||
            !find_int(env.payload(), "seq", seq) || !find_int(env.payload(), "t", t) || seq < 0 ||
            static_cast<std::uint64_t>(seq) >= published_) {
            ++bad_frames_;
            return;
        }
        const std::int64_t now = now_ns();
        const auto s = static_cast<std::uint64_t>(seq);
        if (!broadcast_ && s % n_ != c.index()) ++misrouted_;
        const std::uint32_t want = broadcast_ ? static_cast<std::uint32_t>(n_) : 1;
        if (counts_[s] >= want) {
            ++duplicates_;
            return;
        }
        ++received_;
        if (++counts_[s] == want) {
            ++completed_;
            if (now >= measure_from_ && now < measure_to_) ++window_completed_;
        }
        if (now >= measure_from_ && now < measure_to_) ++window_received_;
        if (t0_ + t >= measure_from_ && t0_ + t < measure_to_) latency_.record(now - (t0_ + t));
    }

    bool broadcast_;
    std::size_t n_ = 0;
    std::int64_t t0_ = 0;
    std::int64_t measure_from_ = 0;
    std::int64_t measure_to_ = 0;
    std::vector<std::uint32_t> counts_;  // per published seq: deliveries seen
    std::uint64_t published_ = 0;
    std::uint64_t completed_ = 0;
    std::uint64_t received_ = 0;
    std::uint64_t window_received_ = 0;
    std::uint64_t window_completed_ = 0;
    std::uint64_t duplicates_ = 0;
    std::uint64_t misrouted_ = 0;
    std::uint64_t unsubscribed_ = 0;
    latency_histogram latency_;
};

// ---------------------------------------------------------------------------------------------
// roundtrip: commands at a fixed rate -> XADD -> echo service (consumer group) -> PUBLISH ->
// the sending player. Latency from send to the echoed update.

class roundtrip final : public session {
public:
    using session::session;

    bool run() {
        const std::size_t n = o_.connections ? o_.connections : 50;
        cpu_meter cpu(o_.server_pid, o_.redis_pid);
        bool ok = open(n, open_timeout_s);
        const std::int64_t start = now_ns();
        measure_from_ = start + to_ns(o_.warmup_s);
        measure_to_ = measure_from_ + to_ns(o_.duration_s);
        bool measuring = false;
        if (ok) {
            const double per_ns = o_.rate / 1e9;
            while (now_ns() < measure_to_ && clean()) {
                // Open loop, paced in ~1 ms ticks: whatever is due by now is sent now, whether
                // or not earlier commands were answered.
                const std::int64_t now = now_ns();
                const auto due =
                    static_cast<std::uint64_t>(static_cast<double>(now - start) * per_ns);
                while (sent_at_.size() < due) send_next(*conns_[sent_at_.size() % n]);
                loop_.flush_now();
                loop_.run_once(1);
                if (!measuring && now_ns() >= measure_from_) {
                    cpu.start();
                    measuring = true;
                }
            }
            if (measuring) cpu.stop();
            // Both answers of every command: an echo can overtake its own ack (the service's
            // PUBLISH reaches the client before the server has written the XADD reply's ack).
            drain(o_.drain_s, [&] {
                return (echoes_ >= sent_at_.size() && acks_ >= sent_at_.size()) || !clean();
            });
        }
        const std::uint64_t lost = sent_at_.size() - echoes_;
        ok = ok && clean() && lost == 0 && acks_ == sent_at_.size() && window_echoes_ > 0;
        json_line j;
        j.field("workload", "roundtrip")
            .field("server", o_.label)
            .field("connections", static_cast<std::uint64_t>(n))
            .field("rate", o_.rate)
            .field("warmup_s", o_.warmup_s)
            .field("duration_s", o_.duration_s)
            .field("sent", static_cast<std::uint64_t>(sent_at_.size()))
            .field("acks", acks_)
            .field("echoes", echoes_)
            .field("lost", lost)
            .field("echoes_per_s", static_cast<double>(window_echoes_) / o_.duration_s)
            .latency("", latency_)
            .latency("ack_", ack_latency_);
        report_common(j, cpu);
        j.field("ok", ok).print();
        close_all();
        return ok;
    }

private:
    void send_next(ws_connection& c) {
        const std::uint64_t seq = sent_at_.size();
        const int len =
            std::snprintf(corr_, sizeof corr_, "r%llu", static_cast<unsigned long long>(seq));
        sent_at_.push_back(now_ns());
        send_command(c, "bench.echo", R"({"n":1})",
                     std::string_view(corr_, static_cast<std::size_t>(len)));
    }

    void handle(ws_connection& /*c*/, const gc::envelope& env) override {
        std::uint64_t seq = 0;
        const bool is_ack = env.type() == "ack";
        if ((!is_ack && env.type() != "bench.echo") || !seq_of(env.correlation_id(), seq) ||
            seq >= sent_at_.size()) {
            ++bad_frames_;
            return;
        }
        const std::int64_t now = now_ns();
        const bool in_window = sent_at_[seq] >= measure_from_ && sent_at_[seq] < measure_to_;
        if (is_ack) {
            ++acks_;
            if (in_window) ack_latency_.record(now - sent_at_[seq]);
            return;
        }
        ++echoes_;
        if (in_window) latency_.record(now - sent_at_[seq]);
        if (now >= measure_from_ && now < measure_to_) ++window_echoes_;
    }

    std::vector<std::int64_t> sent_at_;
    std::uint64_t acks_ = 0;
    std::uint64_t echoes_ = 0;
    std::uint64_t window_echoes_ = 0;
    std::int64_t measure_from_ = 0;
    std::int64_t measure_to_ = 0;
    latency_histogram latency_;
    latency_histogram ack_latency_;
    char corr_[32];
};

// ---------------------------------------------------------------------------------------------
// connect: N connections opened as fast as possible; connections/s, server RSS per connection.

class connect_storm final : public session {
public:
    using session::session;

    bool run() {
        const std::size_t n = o_.connections ? o_.connections : 2000;
        cpu_meter cpu(o_.server_pid, o_.redis_pid);
        const long long rss_before = server_rss_bytes(o_.server_pid);
        cpu.start();
        bool ok = open(n, open_timeout_s);
        cpu.stop();
        const double open_s = static_cast<double>(last_welcome_ - open_started_) / 1e9;
        // Idle for a moment (pings answered) so what the server allocated per connection has
        // settled before RSS is read.
        drain(1.0, [] { return false; });
        const long long rss_after = server_rss_bytes(o_.server_pid);
        ok = ok && clean();
        json_line j;
        j.field("workload", "connect")
            .field("server", o_.label)
            .field("connections", static_cast<std::uint64_t>(n))
            .field("concurrency", static_cast<std::uint64_t>(o_.concurrency))
            .field("open_s", open_s)
            .field("connections_per_s", open_s > 0 ? static_cast<double>(welcomed_) / open_s : 0.0)
            .latency("welcome_", handshake_)
            .field("rss_before_bytes", rss_before)
            .field("rss_after_bytes", rss_after);
        if (rss_before >= 0 && rss_after >= 0 && welcomed_ > 0) {
            j.field("rss_per_conn_bytes",
                    static_cast<double>(rss_after - rss_before) / static_cast<double>(welcomed_));
        }
        report_common(j, cpu);
        j.field("ok", ok).print();
        close_all();
        return ok;
    }

private:
    void handle(ws_connection& /*c*/, const gc::envelope& /*env*/) override { ++bad_frames_; }
};

// ---------------------------------------------------------------------------------------------
// idle: N connections opened, then held idle (pings answered) until SIGTERM, SIGINT or
// --duration. Several generators can share one server's connections (bench/idle_connections.py
// runs them, each under its own --player-prefix, and reads the server's RSS while they hold).

volatile std::sig_atomic_t hold_stop = 0;

extern "C" void on_hold_signal(int /*sig*/) { hold_stop = 1; }

class idle_hold final : public session {
public:
    using session::session;

    bool run() {
        const std::size_t n = o_.connections ? o_.connections : 1000;
        std::signal(SIGTERM, on_hold_signal);
        std::signal(SIGINT, on_hold_signal);
        bool ok = open(n, open_timeout_s);
        const double open_s = static_cast<double>(last_welcome_ - open_started_) / 1e9;
        // What the harness waits for before it reads the server's memory.
        std::fprintf(stderr, "gatehouse_load idle: open welcomed=%zu failed=%zu\n", welcomed_,
                     failed_opens_);
        const std::int64_t hold_from = now_ns();
        if (ok) drain(o_.duration_s, [] { return hold_stop != 0; });
        const double held_s = static_cast<double>(now_ns() - hold_from) / 1e9;
        ok = ok && clean();
        cpu_meter cpu(0, 0);
        json_line j;
        j.field("workload", "idle")
            .field("server", o_.label)
            .field("connections", static_cast<std::uint64_t>(n))
            .field("concurrency", static_cast<std::uint64_t>(o_.concurrency))
            .field("source_addresses", static_cast<std::uint64_t>(o_.source_addresses.size()))
            .field("open_s", open_s)
            .field("connections_per_s", open_s > 0 ? static_cast<double>(welcomed_) / open_s : 0.0)
            .field("held_s", held_s);
        report_common(j, cpu);
        j.field("ok", ok).print();
        close_all();
        return ok;
    }

private:
    void handle(ws_connection& /*c*/, const gc::envelope& /*env*/) override { ++bad_frames_; }
};

}  // namespace

bool parse_addresses(const std::string& text, std::vector<in_addr>& out) {
    std::size_t from = 0;
    while (from <= text.size()) {
        const auto comma = text.find(',', from);
        const std::string item =
            text.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
        const auto dash = item.find('-');
        in_addr first{}, last{};
        if (inet_pton(AF_INET, item.substr(0, dash).c_str(), &first) != 1) return false;
        last = first;
        if (dash != std::string::npos &&
            inet_pton(AF_INET, item.substr(dash + 1).c_str(), &last) != 1) {
            return false;
        }
        const std::uint32_t lo = ntohl(first.s_addr), hi = ntohl(last.s_addr);
        if (hi < lo || hi - lo >= 65536 || out.size() + (hi - lo) >= 65536) return false;
        for (std::uint32_t a = lo;; ++a) {
            in_addr addr{};
            addr.s_addr = htonl(a);
            out.push_back(addr);
            if (a == hi) break;
        }
        if (comma == std::string::npos) break;
        from = comma + 1;
    }
    return !out.empty();
}

bool run_workload(const options& o) {
    if (o.workload == "ingress") return ingress(o).run();
    if (o.workload == "fanout") return fanout(o, false).run();
    if (o.workload == "broadcast") return fanout(o, true).run();
    if (o.workload == "roundtrip") return roundtrip(o).run();
    if (o.workload == "connect") return connect_storm(o).run();
    if (o.workload == "idle") return idle_hold(o).run();
    std::fprintf(stderr, "gatehouse_load: unknown workload '%s'\n", o.workload.c_str());
    return false;
}

}  // namespace gatehouse_load
