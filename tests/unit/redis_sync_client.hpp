#pragma once

// A plain synchronous hiredis client for tests: what a bus wrote is checked with a client that
// shares none of its code. Fails the test (REQUIRE) when Redis does not answer.

#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <catch2/catch.hpp>

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "redis_server_fixture.hpp"

namespace gatehouse_test {

// One connection; replies are kept until the client is destroyed.
class sync_client {
public:
    explicit sync_client(const redis_server& server) {
        timeval tv{2, 0};
        c_ = redisConnectWithTimeout("127.0.0.1", server.port(), tv);
        REQUIRE(c_ != nullptr);
        REQUIRE(c_->err == 0);
        redisSetTimeout(c_, tv);
    }
    ~sync_client() { redisFree(c_); }
    sync_client(const sync_client&) = delete;
    sync_client& operator=(const sync_client&) = delete;

    redisReply* run(const std::vector<std::string>& argv) {
        std::vector<const char*> args;
        std::vector<std::size_t> lengths;
        for (const auto& a : argv) {
            args.push_back(a.data());
            lengths.push_back(a.size());
        }
        auto* r = static_cast<redisReply*>(
            redisCommandArgv(c_, static_cast<int>(args.size()), args.data(), lengths.data()));
        REQUIRE(r != nullptr);
        replies_.emplace_back(r, freeReplyObject);
        return r;
    }

    long long integer(const std::vector<std::string>& argv) { return run(argv)->integer; }

    // XRANGE stream id id -> field -> value of that one entry (empty when absent).
    std::map<std::string, std::string> entry(const std::string& stream, const std::string& id) {
        std::map<std::string, std::string> out;
        auto* r = run({"XRANGE", stream, id, id});
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 1) return out;
        const auto* fields = r->element[0]->element[1];
        for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
            out[std::string(fields->element[i]->str, fields->element[i]->len)] =
                std::string(fields->element[i + 1]->str, fields->element[i + 1]->len);
        }
        return out;
    }

private:
    redisContext* c_ = nullptr;
    std::vector<std::unique_ptr<redisReply, void (*)(void*)>> replies_;
};

}  // namespace gatehouse_test
