// Black-box test of gatehouse-server from C++: a real WebSocket client (Boost.Beast's websocket
// stream, a test-only dependency) that encodes and decodes with gatehouse::client_codec, as a
// game client would.
//
// Usage: gatehouse_server_ws_client_test PATH/TO/gatehouse-server
//
// The program starts the server itself on 127.0.0.1:0, reads the port from the ready line,
// mints its own HS256 tokens with OpenSSL (independent of the server's JWT code) and publishes
// updates with POST /updates. Every wait is bounded; the server is stopped with SIGTERM (and
// killed if it does not exit) whatever happens. Prints "N passed, N failed".

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "gatehouse/client/codec.hpp"

namespace {

namespace gc = gatehouse::client;
using json = nlohmann::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr auto ready_timeout = 10s;
constexpr auto recv_timeout = 5s;
constexpr auto stop_timeout = 8s;

// ---------------------------------------------------------------------------------------------
// Checks

struct checks {
    int passed = 0;
    int failed = 0;

    bool operator()(const std::string& name, bool ok, const std::string& detail = {}) {
        if (ok) {
            ++passed;
            std::cout << "PASS " << name << "\n";
        } else {
            ++failed;
            std::cout << "FAIL " << name << (detail.empty() ? "" : ": " + detail) << "\n";
        }
        std::cout.flush();
        return ok;
    }
};

// ---------------------------------------------------------------------------------------------
// JWT minting (HS256 with OpenSSL's HMAC)

std::string b64url(std::string_view in) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::size_t i = 0;
    auto byte = [&](std::size_t k) {
        return static_cast<unsigned>(static_cast<unsigned char>(in[k]));
    };
    for (; i + 3 <= in.size(); i += 3) {
        const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (in.size() - i == 1) {
        const unsigned v = byte(i) << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
    } else if (in.size() - i == 2) {
        const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
    }
    return out;
}

std::string mint_token(const std::string& secret, const std::string& sub, long exp_offset = 600) {
    const long now = static_cast<long>(std::time(nullptr));
    const std::string signing_input =
        b64url(R"({"alg":"HS256","typ":"JWT"})") + "." +
        b64url(json{{"sub", sub}, {"iat", now}, {"exp", now + exp_offset}}.dump());
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
         &mac_len);
    return signing_input + "." + b64url({reinterpret_cast<const char*>(mac), mac_len});
}

std::string random_hex(std::size_t n) {
    std::random_device rd;
    std::string out;
    static constexpr char digits[] = "0123456789abcdef";
    for (std::size_t i = 0; i < n; ++i) out += digits[rd() % 16];
    return out;
}

// ---------------------------------------------------------------------------------------------
// The server process

class server_process {
public:
    server_process(const std::string& binary, std::vector<std::string> args) {
        char path[] = "/tmp/gatehouse-cpp-test-stderr-XXXXXX";
        const int err_fd = mkstemp(path);
        if (err_fd >= 0) stderr_path_ = path;
        int out_pipe[2];
        if (pipe(out_pipe) != 0) return;
        pid_ = fork();
        if (pid_ == 0) {
            dup2(out_pipe[1], STDOUT_FILENO);
            if (err_fd >= 0) dup2(err_fd, STDERR_FILENO);
            const int null_fd = open("/dev/null", O_RDONLY);
            if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
            close(out_pipe[0]);
            std::vector<char*> argv;
            argv.push_back(const_cast<char*>(binary.c_str()));
            for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
            argv.push_back(nullptr);
            execv(binary.c_str(), argv.data());
            _exit(127);
        }
        close(out_pipe[1]);
        if (err_fd >= 0) close(err_fd);
        stdout_fd_ = out_pipe[0];
        read_ready_line();
    }

    ~server_process() {
        stop(SIGTERM);
        if (stdout_fd_ >= 0) close(stdout_fd_);
        if (!stderr_path_.empty()) unlink(stderr_path_.c_str());
    }

    server_process(const server_process&) = delete;
    server_process& operator=(const server_process&) = delete;

    int port() const { return port_; }
    const std::string& ready_line() const { return ready_line_; }

    /// Signals the server and waits (bounded); the exit code, or -1 when it had to be killed.
    int stop(int sig) {
        if (pid_ <= 0) return exit_code_;
        kill(pid_, sig);
        const auto deadline = steady::now() + stop_timeout;
        int status = 0;
        while (steady::now() < deadline) {
            const pid_t r = waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                pid_ = 0;
                exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                return exit_code_;
            }
            std::this_thread::sleep_for(20ms);
        }
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        pid_ = 0;
        exit_code_ = -1;
        return exit_code_;
    }

    std::string stderr_tail(std::size_t n = 2000) const {
        std::FILE* f = std::fopen(stderr_path_.c_str(), "rb");
        if (!f) return {};
        std::string text;
        char buf[4096];
        std::size_t got = 0;
        while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
        std::fclose(f);
        return text.size() > n ? text.substr(text.size() - n) : text;
    }

private:
    void read_ready_line() {
        std::string line;
        const auto deadline = steady::now() + ready_timeout;
        while (line.find('\n') == std::string::npos && steady::now() < deadline) {
            pollfd p{stdout_fd_, POLLIN, 0};
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
            if (poll(&p, 1, static_cast<int>(std::max<long long>(1, left.count()))) <= 0) continue;
            char buf[256];
            const ssize_t n = read(stdout_fd_, buf, sizeof buf);
            if (n <= 0) break;
            line.append(buf, static_cast<std::size_t>(n));
        }
        ready_line_ = line.substr(0, line.find('\n'));
        static const std::regex ready_re(R"(^gatehouse ready listen=127\.0\.0\.1:(\d+)$)");
        std::smatch m;
        if (std::regex_match(ready_line_, m, ready_re)) port_ = std::stoi(m[1].str());
    }

    pid_t pid_ = -1;
    int stdout_fd_ = -1;
    int port_ = 0;
    int exit_code_ = -1;
    std::string ready_line_;
    std::string stderr_path_;
};

// ---------------------------------------------------------------------------------------------
// HTTP on a blocking socket with timeouts

struct http_answer {
    int status = 0;
    std::string body;
};

http_answer http_request(int port, const std::string& method, const std::string& path,
                         const std::string& body, const std::string& extra_headers) {
    http_answer answer;
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return answer;
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return answer;
    }
    std::string req = method + " " + path +
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra_headers +
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    std::size_t sent = 0;
    while (sent < req.size()) {
        const ssize_t n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
    }
    std::string resp;
    char buf[4096];
    for (;;) {
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        resp.append(buf, static_cast<std::size_t>(n));
        // Connection: close is honoured by the server, but do not rely on it: stop once the
        // announced body is complete.
        const auto head_end = resp.find("\r\n\r\n");
        if (head_end != std::string::npos) {
            static const std::regex cl_re(R"(content-length:\s*(\d+))", std::regex::icase);
            std::smatch m;
            const std::string head = resp.substr(0, head_end);
            if (std::regex_search(head, m, cl_re) &&
                resp.size() >= head_end + 4 + std::stoul(m[1].str()))
                break;
        }
    }
    close(fd);
    if (resp.size() > 12 && resp.compare(0, 5, "HTTP/") == 0)
        answer.status = std::atoi(resp.c_str() + resp.find(' ') + 1);
    const auto head_end = resp.find("\r\n\r\n");
    if (head_end != std::string::npos) answer.body = resp.substr(head_end + 4);
    return answer;
}

// ---------------------------------------------------------------------------------------------
// A blocking WebSocket session over Boost.Beast's websocket client, one I/O thread per session.
// Every operation runs on that thread (Beast streams are not thread-safe); the test thread
// posts to it and waits, bounded, on a condition variable.

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bws = boost::beast::websocket;
namespace bhttp = boost::beast::http;

struct ws_frame {
    bool text = false;
    std::string data;
};

class ws_session {
public:
    /// Connects to ws://127.0.0.1:PORT/PATH (only loopback URLs of that shape are used here).
    ws_session(const std::string& url, const std::vector<std::string>& subprotocols,
               const std::vector<std::pair<std::string, std::string>>& headers = {})
        : ws_(io_) {
        static const std::regex url_re(R"(^ws://([0-9.]+):(\d+)(/.*)$)");
        std::smatch m;
        if (!std::regex_match(url, m, url_re)) {
            state_ = state::failed;
            return;
        }
        host_ = m[1].str() + ":" + m[2].str();
        target_ = m[3].str();
        const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(m[1].str()),
                                               static_cast<unsigned short>(std::stoi(m[2].str())));
        bws::stream_base::timeout timeouts{};
        timeouts.handshake_timeout = recv_timeout;
        timeouts.idle_timeout = bws::stream_base::none();
        timeouts.keep_alive_pings = false;
        ws_.set_option(timeouts);
        std::string offered;
        for (const auto& sp : subprotocols) offered += (offered.empty() ? "" : ", ") + sp;
        ws_.set_option(bws::stream_base::decorator([offered, headers](bws::request_type& req) {
            if (!offered.empty()) req.set(bhttp::field::sec_websocket_protocol, offered);
            for (const auto& [name, value] : headers) req.set(name, value);
        }));
        response_.result(0u);     // stays 0 unless an HTTP answer arrives
        ws_.read_message_max(0);  // no client-side limit: the server's frames are what is tested
        beast::get_lowest_layer(ws_).expires_after(recv_timeout);
        beast::get_lowest_layer(ws_).async_connect(endpoint, [this](beast::error_code ec) {
            if (ec) return finish_handshake(ec);
            beast::get_lowest_layer(ws_).expires_never();  // the stream's own timeouts now
            ws_.async_handshake(response_, host_, target_,
                                [this](beast::error_code hec) { finish_handshake(hec); });
        });
        thread_ = std::thread([this] { io_.run(); });
    }

    ~ws_session() {
        if (wait_open()) {
            asio::post(io_, [this] {
                if (!ws_.is_open()) return;
                ws_.async_close(bws::close_code::normal, [](beast::error_code) {});
            });
            std::unique_lock<std::mutex> lock(mutex_);
            cv_.wait_for(lock, 2s, [this] { return state_ == state::closed; });
        }
        // Whatever is still pending completes (aborted) before the stream goes away.
        asio::post(io_, [this] {
            beast::error_code ignored;
            beast::get_lowest_layer(ws_).socket().close(ignored);
        });
        {
            std::unique_lock<std::mutex> lock(mutex_);
            cv_.wait_for(lock, 2s, [this] { return state_ != state::open; });
        }
        io_.stop();
        if (thread_.joinable()) thread_.join();
    }

    ws_session(const ws_session&) = delete;
    ws_session& operator=(const ws_session&) = delete;

    /// True once open; false when the handshake failed (see http_status()) or timed out.
    bool wait_open() {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait_for(lock, recv_timeout, [this] { return state_ != state::connecting; });
        return opened_once_;
    }

    int http_status() {
        std::lock_guard<std::mutex> lock(mutex_);
        return http_status_;
    }

    std::string subprotocol() {
        std::lock_guard<std::mutex> lock(mutex_);
        return subprotocol_;
    }

    std::optional<ws_frame> recv(std::chrono::milliseconds timeout = recv_timeout) {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait_for(lock, timeout, [this] { return !inbox_.empty() || state_ == state::closed; });
        if (inbox_.empty()) return std::nullopt;
        ws_frame f = std::move(inbox_.front());
        inbox_.pop_front();
        return f;
    }

    /// Writes one message on the I/O thread; true once it is written (bounded wait).
    bool send(const std::string& data, bool text) {
        if (!wait_open()) return false;
        auto done = std::make_shared<std::optional<bool>>();
        asio::post(io_, [this, data, text, done] {
            // The tests wait for each send, so writes never overlap.
            auto copy = std::make_shared<std::string>(data);
            ws_.text(text);
            ws_.async_write(asio::buffer(*copy),
                            [this, copy, done](beast::error_code ec, std::size_t) {
                                std::lock_guard<std::mutex> lock(mutex_);
                                *done = !ec;
                                cv_.notify_all();
                            });
        });
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait_for(lock, recv_timeout, [&] { return done->has_value(); });
        return done->value_or(false);
    }

private:
    enum class state { connecting, open, failed, closed };

    void finish_handshake(beast::error_code ec) {
        std::lock_guard<std::mutex> lock(mutex_);
        http_status_ = static_cast<int>(response_.result_int());
        if (ec) {
            state_ = state::failed;
        } else {
            subprotocol_ = std::string(response_[bhttp::field::sec_websocket_protocol]);
            state_ = state::open;
            opened_once_ = true;
            asio::post(io_, [this] { read_next(); });
        }
        cv_.notify_all();
    }

    void read_next() {
        ws_.async_read(buffer_, [this](beast::error_code ec, std::size_t) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (ec) {
                // The server's close frame, or the connection ended.
                close_code_ = static_cast<int>(ws_.reason().code);
                state_ = state::closed;
                cv_.notify_all();
                return;
            }
            inbox_.push_back({ws_.got_text(), beast::buffers_to_string(buffer_.data())});
            buffer_.consume(buffer_.size());
            cv_.notify_all();
            asio::post(io_, [this] { read_next(); });
        });
    }

    asio::io_context io_;
    bws::stream<beast::tcp_stream> ws_;
    beast::flat_buffer buffer_;
    bws::response_type response_;
    std::string host_;
    std::string target_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable cv_;
    state state_ = state::connecting;
    bool opened_once_ = false;
    int http_status_ = 0;
    int close_code_ = 0;
    std::string subprotocol_;
    std::deque<ws_frame> inbox_;
};

// ---------------------------------------------------------------------------------------------
// Envelopes through gatehouse::client_codec

struct decoded {
    std::string frame;  // owns the bytes env's payload points into
    gc::envelope env;
    json payload;
    std::string error;  // empty when decoding worked
};

decoded decode_frame(gc::wire_format format, ws_frame f) {
    decoded d;
    d.frame = std::move(f.data);
    if (f.text != gc::is_text(format)) {
        d.error = std::string("frame kind: got ") + (f.text ? "text" : "binary") + " on a " +
                  std::string(gc::name_of(format)) + " connection";
        return d;
    }
    const gc::status s = gc::decode(format, d.frame, d.env);
    if (s != gc::status::ok) {
        d.error = std::string("decode: ") + gc::describe(s);
        return d;
    }
    const std::string_view p = d.env.payload();
    if (d.env.format() == gc::payload_format::json) {
        d.payload = json::parse(p.begin(), p.end(), nullptr, false);
    } else if (d.env.format() == gc::payload_format::msgpack) {
        d.payload = json::from_msgpack(p.begin(), p.end(), true, false);
    } else {
        d.error = "payload_codec '" + std::string(d.env.payload_codec()) + "', want json";
        return d;
    }
    if (d.payload.is_discarded()) d.error = "payload does not parse";
    return d;
}

std::string encode_command(gc::wire_format format, const std::string& type, const json& payload,
                           const std::string& correlation_id) {
    gc::envelope e;
    if (e.set_type(type) != gc::status::ok) return {};
    if (!correlation_id.empty() && e.set_correlation_id(correlation_id) != gc::status::ok)
        return {};
    std::string payload_bytes;
    if (format == gc::wire_format::msgpack) {
        const auto v = json::to_msgpack(payload);
        payload_bytes.assign(v.begin(), v.end());
        e.set_payload(gc::payload_format::msgpack, payload_bytes);
    } else {
        payload_bytes = payload.dump();
        e.set_payload(gc::payload_format::json, payload_bytes);
    }
    const gc::encode_result size = gc::encode(format, e, nullptr, 0);
    if (size.code != gc::status::buffer_too_small && size.code != gc::status::ok) return {};
    std::string out(size.size, '\0');
    const gc::encode_result r = gc::encode(format, e, out.data(), out.size());
    if (r.code != gc::status::ok) return {};
    out.resize(r.size);
    return out;
}

std::optional<decoded> recv_decoded(ws_session& s, gc::wire_format format) {
    auto f = s.recv();
    if (!f) return std::nullopt;
    return decode_frame(format, std::move(*f));
}

// ---------------------------------------------------------------------------------------------

struct fixture {
    std::string secret = "cpp-secret-" + random_hex(24);
    std::string publish_key = "cpp-pub-" + random_hex(12);
    std::string bot_key = "cpp-bot-" + random_hex(12);
    int port = 0;

    std::string url(const std::string& path) const {
        return "ws://127.0.0.1:" + std::to_string(port) + path;
    }
};

const gc::wire_format all_formats[] = {gc::wire_format::json, gc::wire_format::msgpack,
                                       gc::wire_format::protobuf};

void test_connect_welcome_ack(checks& check, const fixture& fx) {
    for (const gc::wire_format format : all_formats) {
        const std::string name(gc::name_of(format));
        for (const bool by_subprotocol : {false, true}) {
            const std::string how = by_subprotocol ? "subprotocol" : "?codec=";
            const std::string label = name + " via " + how;
            const std::string token = mint_token(fx.secret, "cpp-player");
            std::vector<std::string> offered;
            std::string path = "/ws/player/" + token;
            if (by_subprotocol)
                offered.push_back("gatehouse." + name);
            else
                path += "?codec=" + name;
            ws_session s(fx.url(path), offered);
            if (!check(label + ": upgrade succeeds", s.wait_open(),
                       "HTTP " + std::to_string(s.http_status())))
                continue;
            check(label + ": subprotocol echoed only when offered",
                  s.subprotocol() == (by_subprotocol ? "gatehouse." + name : std::string()),
                  "got '" + s.subprotocol() + "'");

            auto w = recv_decoded(s, format);
            if (check(label + ": welcome arrives first and decodes", w && w->error.empty(),
                      w ? w->error : "nothing received")) {
                check(label + ": welcome fields",
                      w->env.type() == "welcome" &&
                          w->payload.value("player_id", "") == "cpp-player" &&
                          w->payload.value("codec", "") == name &&
                          !w->payload.value("connection_id", "").empty(),
                      std::string(w->env.type()) + " " + w->payload.dump());
            }

            const std::string cid = "cpp-" + name + (by_subprotocol ? "-sp" : "-q");
            check(label + ": command sent",
                  s.send(encode_command(format, "player_action", json{{"move", {1, 2}}}, cid),
                         gc::is_text(format)));
            auto ack = recv_decoded(s, format);
            static const std::regex stream_id_re(R"(^\d+-\d+$)");
            if (check(label + ": ack decodes", ack && ack->error.empty(),
                      ack ? ack->error : "nothing received")) {
                const std::string sid = ack->payload.value("stream_id", "");
                check(label + ": ack with correlation_id and stream_id",
                      ack->env.type() == "ack" && ack->env.correlation_id() == cid &&
                          std::regex_match(sid, stream_id_re),
                      std::string(ack->env.type()) + " " + std::string(ack->env.correlation_id()) +
                          " " + ack->payload.dump());
            }

            // A command without correlation_id gets one assigned.
            s.send(encode_command(format, "player_action", nullptr, ""), gc::is_text(format));
            auto assigned = recv_decoded(s, format);
            check(label + ": missing correlation_id is assigned in the ack",
                  assigned && assigned->error.empty() && assigned->env.type() == "ack" &&
                      assigned->env.has_correlation_id());
        }
    }
}

void test_updates(checks& check, const fixture& fx) {
    std::vector<std::pair<gc::wire_format, std::unique_ptr<ws_session>>> sessions;
    for (const gc::wire_format format : all_formats) {
        const std::string path = "/ws/player/" + mint_token(fx.secret, "cpp-updates") +
                                 "?codec=" + std::string(gc::name_of(format));
        auto s = std::make_unique<ws_session>(fx.url(path), std::vector<std::string>{});
        if (!s->wait_open()) {
            check("updates: connect " + std::string(gc::name_of(format)), false);
            return;
        }
        recv_decoded(*s, format);  // welcome
        sessions.emplace_back(format, std::move(s));
    }
    const json payload = {{"hp", 97}, {"pos", {1.5, -2}}, {"name", "caf\u00e9"}, {"ok", true}};
    const json update = {{"player_id", "cpp-updates"},
                         {"type", "state"},
                         {"payload", payload},
                         {"correlation_id", "upd-1"}};
    const http_answer a = http_request(
        fx.port, "POST", "/updates", update.dump(),
        "Authorization: Bearer " + fx.publish_key + "\r\nContent-Type: application/json\r\n");
    check("POST /updates answers 202", a.status == 202, std::to_string(a.status) + " " + a.body);
    for (auto& [format, s] : sessions) {
        const std::string name(gc::name_of(format));
        auto u = recv_decoded(*s, format);
        if (check("update arrives on the " + name + " connection, decoded by client_codec",
                  u && u->error.empty(), u ? u->error : "nothing received")) {
            check("update on " + name + ": type, payload, correlation_id",
                  u->env.type() == "state" && u->payload == payload &&
                      u->env.correlation_id() == "upd-1",
                  std::string(u->env.type()) + " " + u->payload.dump());
        }
    }
}

void test_bot(checks& check, const fixture& fx) {
    ws_session s(fx.url("/ws/bot/" + fx.bot_key), {});
    if (!check("bot: upgrade succeeds", s.wait_open())) return;
    auto w = recv_decoded(s, gc::wire_format::msgpack);
    check("bot: msgpack welcome by default with player_id bot:cppbot",
          w && w->error.empty() && w->env.type() == "welcome" &&
              w->payload.value("player_id", "") == "bot:cppbot" &&
              w->payload.value("codec", "") == "msgpack",
          w ? w->error + " " + w->payload.dump() : "nothing received");
}

void test_unauthorized(checks& check, const fixture& fx) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"garbage token", "/ws/player/garbage"},
        {"wrong secret", "/ws/player/" + mint_token(fx.secret + "x", "cpp-player")},
        {"expired token", "/ws/player/" + mint_token(fx.secret, "cpp-player", -60)},
        {"no token", "/ws/player"},
        {"bad bot key", "/ws/bot/" + fx.bot_key + "x"},
    };
    for (const auto& [name, path] : cases) {
        ws_session s(fx.url(path), {});
        const bool opened = s.wait_open();
        check("401 at upgrade: " + name, !opened && s.http_status() == 401,
              "opened=" + std::to_string(opened) + " HTTP " + std::to_string(s.http_status()));
    }
    ws_session bearer(fx.url("/ws/player"), {},
                      {{"Authorization", "Bearer " + mint_token(fx.secret, "cpp-bearer")}});
    check("Bearer header upgrade succeeds", bearer.wait_open(),
          "HTTP " + std::to_string(bearer.http_status()));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " PATH/TO/gatehouse-server\n";
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    checks check;
    fixture fx;
    {
        server_process server(argv[1], {"--listen", "127.0.0.1:0", "--jwt-secret", fx.secret,
                                        "--publish-key", fx.publish_key, "--bot-key",
                                        "cppbot:" + fx.bot_key, "--shutdown-timeout", "3"});
        if (check("server prints the ready line", server.port() > 0,
                  "line '" + server.ready_line() + "', stderr: " + server.stderr_tail())) {
            fx.port = server.port();
            test_connect_welcome_ack(check, fx);
            test_updates(check, fx);
            test_bot(check, fx);
            test_unauthorized(check, fx);
        }
        const int code = server.stop(SIGTERM);
        const std::string tail = server.stderr_tail(std::size_t{1} << 24);
        check("server exits 0 on SIGTERM", code == 0,
              "exit " + std::to_string(code) + ", stderr: " + server.stderr_tail());
        check("no sanitizer report in the server's stderr",
              tail.find("Sanitizer") == std::string::npos &&
                  tail.find("runtime error:") == std::string::npos,
              server.stderr_tail());
    }
    std::cout << check.passed << " passed, " << check.failed << " failed\n";
    return check.failed == 0 ? 0 : 1;
}
