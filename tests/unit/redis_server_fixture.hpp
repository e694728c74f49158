#pragma once

// A real redis-server for tests: started on a free loopback port, stopped by PID. Every wait
// is bounded; a server that does not answer PING within a few seconds fails the test.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace gatehouse_test {

/// A redis-server child process on 127.0.0.1; see the file comment.
class redis_server {
public:
    /// Starts `/usr/bin/redis-server` with no persistence plus `extra_args`; throws if it does
    /// not answer within 5 seconds.
    explicit redis_server(std::vector<std::string> extra_args = {})
        : extra_args_(std::move(extra_args)) {
        port_ = free_port();
        spawn();
    }

    ~redis_server() { stop(); }
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    /// The loopback port it listens on.
    std::uint16_t port() const { return port_; }
    /// `redis://127.0.0.1:PORT` plus `suffix` (e.g. `/3`).
    std::string url(const std::string& userinfo = "", const std::string& suffix = "") const {
        return "redis://" + userinfo + "127.0.0.1:" + std::to_string(port_) + suffix;
    }

    /// Starts it again on the same port (after `kill_now()` or `stop()`), empty.
    void restart() {
        stop();
        spawn();
    }

    /// SIGSTOP: the server keeps its sockets open but answers nothing, as a hung one would.
    void pause() {
        if (pid_ > 0) ::kill(pid_, SIGSTOP);
    }
    /// SIGCONT after `pause()`.
    void resume() {
        if (pid_ > 0) ::kill(pid_, SIGCONT);
    }

    /// Kills it at once (SIGKILL), as a crash would.
    void kill_now() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        reap(std::chrono::seconds(5));
    }

    /// SIGTERM, then SIGKILL if it is still there after 3 seconds. Idempotent.
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGCONT);  // a paused server cannot act on SIGTERM
        ::kill(pid_, SIGTERM);
        if (reap(std::chrono::seconds(3))) return;
        ::kill(pid_, SIGKILL);
        reap(std::chrono::seconds(5));
    }

private:
    void spawn() {
        std::vector<std::string> args{"/usr/bin/redis-server",
                                      "--port",
                                      std::to_string(port_),
                                      "--bind",
                                      "127.0.0.1",
                                      "--save",
                                      "",
                                      "--appendonly",
                                      "no",
                                      "--daemonize",
                                      "no",
                                      "--loglevel",
                                      "warning"};
        args.insert(args.end(), extra_args_.begin(), extra_args_.end());
        std::vector<char*> argv;
        argv.reserve(args.size() + 1);
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            int devnull = ::open("/dev/null", O_WRONLY);
            if (devnull >= 0) {
                ::dup2(devnull, 1);
                ::dup2(devnull, 2);
            }
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (std::chrono::steady_clock::now() < deadline) {
            if (answers_ping()) return;
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("redis-server exited at start");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        stop();
        throw std::runtime_error("redis-server did not answer PING within 5 s");
    }

    bool reap(std::chrono::milliseconds limit) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_ || r < 0) {
                pid_ = -1;
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    }

    static std::uint16_t free_port() {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) throw std::runtime_error("socket failed");
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        socklen_t len = sizeof addr;
        if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            ::close(fd);
            throw std::runtime_error("bind failed");
        }
        ::close(fd);
        return ntohs(addr.sin_port);
    }

    // Any RESP answer (+PONG, or -NOAUTH with --requirepass) means it is serving.
    bool answers_ping() const {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) return false;
        timeval tv{0, 500000};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port_);
        bool ok = false;
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
            const char ping[] = "PING\r\n";
            char buf[64];
            if (::send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) == sizeof ping - 1) {
                ssize_t n = ::recv(fd, buf, sizeof buf, 0);
                ok = n > 0 && (buf[0] == '+' || buf[0] == '-');
            }
        }
        ::close(fd);
        return ok;
    }

    std::vector<std::string> extra_args_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace gatehouse_test
