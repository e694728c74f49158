#include "redis_pipe.hpp"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <sys/epoll.h>
#include <sys/time.h>

#include <chrono>
#include <thread>
#include <utility>

namespace gatehouse_load {

redis_pipe::redis_pipe(event_loop& loop) : loop_(loop) {}

redis_pipe::~redis_pipe() {
    if (ctx_ != nullptr) {
        if (!broken_ && on_reply_) loop_.remove(ctx_->fd);
        redisFree(ctx_);
    }
}

bool redis_pipe::connect(std::uint16_t port) {
    timeval tv{2, 0};
    ctx_ = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (ctx_ == nullptr || ctx_->err != 0) {
        error_ = ctx_ != nullptr ? ctx_->errstr : "out of memory";
        return false;
    }
    redisSetTimeout(ctx_, tv);
    return true;
}

bool redis_pipe::wait_subscribers(const std::string& channel, long long count, int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
        auto* r = static_cast<redisReply*>(
            redisCommand(ctx_, "PUBSUB NUMSUB %b", channel.data(), channel.size()));
        if (r == nullptr) {
            error_ = ctx_->errstr;
            return false;
        }
        long long subscribers = 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_INTEGER) {
            subscribers = r->element[1]->integer;
        }
        freeReplyObject(r);
        if (subscribers >= count) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    error_ = "no subscriber on the updates channel";
    return false;
}

bool redis_pipe::start(std::function<void(const redisReply&)> on_reply) {
    on_reply_ = std::move(on_reply);
    // hiredis treats EAGAIN as "try later" only when its context is not flagged blocking.
    const int flags = fcntl(ctx_->fd, F_GETFL, 0);
    if (flags < 0 || fcntl(ctx_->fd, F_SETFL, flags | O_NONBLOCK) != 0) return false;
    ctx_->flags &= ~REDIS_BLOCK;
    return loop_.add(ctx_->fd, EPOLLIN, this);
}

void redis_pipe::publish(std::string_view channel, std::string_view message, bool logged) {
    if (broken_) return;
    const char* plain[3] = {"PUBLISH", channel.data(), message.data()};
    const std::size_t plain_lens[3] = {7, channel.size(), message.size()};
    const char* fcall[5] = {"FCALL", "gatehouse_publish", "0", channel.data(), message.data()};
    const std::size_t fcall_lens[5] = {5, 17, 1, channel.size(), message.size()};
    const int ok = logged ? redisAppendCommandArgv(ctx_, 5, fcall, fcall_lens)
                          : redisAppendCommandArgv(ctx_, 3, plain, plain_lens);
    if (ok != REDIS_OK) {
        fail("redisAppendCommandArgv failed");
        return;
    }
    ++pending_;
    if (!flush_queued_ && !want_out_) {
        flush_queued_ = true;
        loop_.want_flush(this);
    }
}

void redis_pipe::flush() {
    flush_queued_ = false;
    if (broken_) return;
    int done = 0;
    // Bounded: hiredis writes up to its whole output buffer per call.
    for (int i = 0; i < 64 && done == 0; ++i) {
        if (redisBufferWrite(ctx_, &done) != REDIS_OK) {
            fail("write to redis failed");
            return;
        }
        if (done == 0) break;  // the socket buffer is full: wait for EPOLLOUT
    }
    if (done == 0 && !want_out_) {
        want_out_ = true;
        loop_.modify(ctx_->fd, EPOLLIN | EPOLLOUT, this);
    } else if (done != 0 && want_out_) {
        want_out_ = false;
        loop_.modify(ctx_->fd, EPOLLIN, this);
    }
}

void redis_pipe::on_io(std::uint32_t events) {
    if (broken_) return;
    if ((events & EPOLLOUT) != 0) flush();
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) return;
    if (redisBufferRead(ctx_) != REDIS_OK) {
        fail("read from redis failed");
        return;
    }
    void* reply = nullptr;
    while (redisReaderGetReply(ctx_->reader, &reply) == REDIS_OK && reply != nullptr) {
        --pending_;
        on_reply_(*static_cast<redisReply*>(reply));
        freeReplyObject(reply);
        reply = nullptr;
    }
}

void redis_pipe::fail(const char* why) {
    if (broken_) return;
    broken_ = true;
    error_ = why;
    loop_.remove(ctx_->fd);
}

}  // namespace gatehouse_load
