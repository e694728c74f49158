#include "redis_link.hpp"

#include <sys/time.h>

#include <utility>

namespace gatehouse_demo::game {
namespace {

timeval to_timeval(std::chrono::milliseconds d) {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(d.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((d.count() % 1000) * 1000);
    return tv;
}

// Errors a Redis gives while it starts or fails over: worth a retry, unlike a wrong password.
bool is_transient(const redisReply* r) {
    for (std::string_view prefix : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"}) {
        if (is_error_reply(r, prefix)) return true;
    }
    return false;
}

}  // namespace

std::string reply_text(const redisReply* r) {
    return r != nullptr && r->str != nullptr ? std::string(r->str, r->len) : std::string();
}

bool is_error_reply(const redisReply* r, std::string_view prefix) {
    return r != nullptr && r->type == REDIS_REPLY_ERROR && reply_text(r).rfind(prefix, 0) == 0;
}

redis_link::redis_link(gatehouse::detail::redis::url url, std::chrono::milliseconds timeout)
    : url_(std::move(url)), timeout_(timeout) {}

connect_result redis_link::connect(std::string& problem) {
    if (ctx_) return connect_result::connected;
    std::unique_ptr<redisContext, context_deleter> c(
        redisConnectWithTimeout(url_.host.c_str(), url_.port, to_timeval(timeout_)));
    if (!c || c->err != 0) {
        problem = "cannot connect to " + redacted_url() + ": " +
                  (c ? std::string(c->errstr) : std::string("out of memory"));
        return connect_result::retry;
    }
    if (redisSetTimeout(c.get(), to_timeval(timeout_)) != REDIS_OK) {
        problem = "cannot set the reply timeout";
        return connect_result::retry;
    }
    ctx_ = std::move(c);
    const auto step = [this, &problem](const char* what, const std::vector<std::string>& args) {
        const auto r = command(args);
        if (!r) {
            problem = std::string(what) + ": " + last_error_;
            return connect_result::retry;
        }
        if (is_transient(r.get())) {
            problem = std::string(what) + ": " + reply_text(r.get());
            ctx_.reset();
            return connect_result::retry;
        }
        if (is_error_reply(r.get())) {
            problem = "Redis refused " + std::string(what) + ": " + reply_text(r.get());
            ctx_.reset();
            return connect_result::refused;
        }
        return connect_result::connected;
    };
    if (!url_.password.empty()) {
        std::vector<std::string> auth{"AUTH"};
        if (!url_.user.empty()) auth.push_back(url_.user);
        auth.push_back(url_.password);
        if (const auto r = step("AUTH", auth); r != connect_result::connected) return r;
    }
    if (url_.db != 0) {
        if (const auto r = step("SELECT", {"SELECT", std::to_string(url_.db)});
            r != connect_result::connected) {
            return r;
        }
    }
    return connect_result::connected;
}

reply_ptr redis_link::command(const std::vector<std::string>& args) {
    if (!ctx_) {
        last_error_ = "not connected";
        return nullptr;
    }
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args.size());
    lengths.reserve(args.size());
    for (const auto& a : args) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    reply_ptr r(static_cast<redisReply*>(
        redisCommandArgv(ctx_.get(), static_cast<int>(args.size()), argv.data(), lengths.data())));
    if (!r) {
        // hiredis leaves a context unusable after an I/O or protocol error.
        last_error_ = ctx_->errstr;
        ctx_.reset();
    }
    return r;
}

}  // namespace gatehouse_demo::game
