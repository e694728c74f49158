#pragma once
// One epoll loop on one thread: the whole load generator runs on it, so that the generator's
// own CPU use is one number (getrusage) and it never competes with itself for the core.

#include <cstdint>
#include <vector>

namespace gatehouse_load {

/// Something with a file descriptor in the loop.
class io_handler {
public:
    virtual ~io_handler() = default;
    /// Called with the epoll events of this handler's descriptor.
    virtual void on_io(std::uint32_t events) = 0;
    /// Called once after every batch of events, when the handler asked for it with
    /// `event_loop::want_flush`: where buffered writes of that batch leave in one send.
    virtual void flush() = 0;
};

/// Thread safety: none; everything runs on the thread that calls `run_once`.
class event_loop {
public:
    event_loop();
    ~event_loop();
    event_loop(const event_loop&) = delete;
    event_loop& operator=(const event_loop&) = delete;

    bool add(int fd, std::uint32_t events, io_handler* h);
    bool modify(int fd, std::uint32_t events, io_handler* h);
    void remove(int fd);

    /// Queues `h` for `flush()` at the end of the current batch (once per batch).
    void want_flush(io_handler* h) { flush_queue_.push_back(h); }

    /// Waits at most `timeout_ms` for events, dispatches them, then runs the queued flushes.
    void run_once(int timeout_ms);

    /// Runs the queued flushes now (after work done outside `run_once`, e.g. a timer tick).
    void flush_now();

private:
    int epfd_ = -1;
    std::vector<io_handler*> flush_queue_;
    std::vector<io_handler*> flushing_;
};

/// CLOCK_MONOTONIC in nanoseconds.
std::int64_t now_ns() noexcept;

}  // namespace gatehouse_load
