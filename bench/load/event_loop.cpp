#include "event_loop.hpp"

#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <stdexcept>

namespace gatehouse_load {

event_loop::event_loop() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {
    if (epfd_ < 0) throw std::runtime_error("epoll_create1 failed");
}

event_loop::~event_loop() {
    if (epfd_ >= 0) ::close(epfd_);
}

bool event_loop::add(int fd, std::uint32_t events, io_handler* h) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = h;
    return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool event_loop::modify(int fd, std::uint32_t events, io_handler* h) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = h;
    return epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void event_loop::remove(int fd) { epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

void event_loop::run_once(int timeout_ms) {
    std::array<epoll_event, 256> events{};
    const int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    for (int i = 0; i < n; ++i) {
        static_cast<io_handler*>(events[static_cast<std::size_t>(i)].data.ptr)
            ->on_io(events[static_cast<std::size_t>(i)].events);
    }
    flush_now();
}

void event_loop::flush_now() {
    // A flush may queue more flushes (a close answered while writing): swap, then drain.
    for (int round = 0; round < 4 && !flush_queue_.empty(); ++round) {
        flushing_.swap(flush_queue_);
        for (io_handler* h : flushing_) h->flush();
        flushing_.clear();
    }
}

std::int64_t now_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace gatehouse_load
