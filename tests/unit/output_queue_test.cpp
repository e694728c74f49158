#include "transport/output_queue.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <sys/uio.h>

namespace {

using gatehouse::detail::out_item;
using gatehouse::detail::output_queue;

out_item item(std::string bytes, std::string_view header = {}) {
    out_item i;
    i.bytes = std::make_shared<const std::string>(std::move(bytes));
    for (char c : header) i.header[i.header_len++] = static_cast<unsigned char>(c);
    return i;
}

// What a sendmsg of the gathered buffers would write, at most `limit` bytes of it.
std::string gathered(output_queue& q, std::size_t max_buffers = 64,
                     std::size_t limit = std::string::npos) {
    std::vector<iovec> buffers(max_buffers);
    const auto count = q.gather(buffers.data(), buffers.size());
    std::string out;
    for (std::size_t i = 0; i < count && out.size() < limit; ++i) {
        out.append(static_cast<const char*>(buffers[i].iov_base), buffers[i].iov_len);
    }
    return out.substr(0, limit);
}

}  // namespace

TEST_CASE("output queue: headers and shared bytes gather in order and are counted", "[transport]") {
    output_queue q;
    q.push(item("hello", "\x81\x05"));
    q.push(item("HTTP/1.1 200 OK\r\n\r\n"));
    CHECK(q.buffered() == 2 + 5 + 19);
    CHECK(gathered(q) == std::string("\x81\x05hello") + "HTTP/1.1 200 OK\r\n\r\n");
    CHECK(q.written(26) == 0);
    CHECK(q.all_written());
    q.clear_written();
    CHECK(q.empty());
}

TEST_CASE("output queue: a partial write resumes inside a header or inside the bytes",
          "[transport]") {
    output_queue q;
    q.push(item("abcdef", "\x82\x06"));
    q.push(item("xyz", "\x81\x03"));
    const std::string all = std::string("\x82\x06") + "abcdef" + "\x81\x03" + "xyz";
    for (std::size_t first = 1; first < all.size(); ++first) {
        output_queue r;
        r.push(item("abcdef", "\x82\x06"));
        r.push(item("xyz", "\x81\x03"));
        CHECK(r.written(first) == all.size() - first);
        CHECK(gathered(r) == all.substr(first));
        CHECK(r.written(all.size() - first) == 0);
        CHECK(r.all_written());
    }
}

TEST_CASE("output queue: one gather fills at most the buffers it is given", "[transport]") {
    output_queue q;
    for (int i = 0; i < 10; ++i) q.push(item("p", "h"));
    // Room for two items of two buffers each: never half an item's buffers.
    CHECK(gathered(q, 5) == "hphp");
    q.written(4);
    CHECK(gathered(q) == "hphphphphphphphp");
}

TEST_CASE("output queue: dropping un-counts only what was not written", "[transport]") {
    output_queue q;
    q.push(item("0123456789"));
    q.push(item("abc", "\x81\x03"));
    CHECK(q.written(4) == 11);
    q.drop();
    CHECK(q.buffered() == 0);
    CHECK(q.empty());
}

TEST_CASE("output queue: bytes handed over for an asynchronous write stay counted until done",
          "[transport]") {
    output_queue q;
    q.push(item("abc", "\x81\x03"));
    std::vector<out_item> in_flight;
    q.take(in_flight);
    CHECK(q.empty());
    CHECK(in_flight.size() == 1);
    CHECK(q.buffered() == 5);
    CHECK(q.uncount(5) == 0);
}

TEST_CASE("output queue: the handshake's burst leaves no memory behind", "[transport]") {
    output_queue q;
    q.push(item("HTTP/1.1 101 Switching Protocols\r\n\r\n"));
    q.release_when_written();
    q.push(item("welcome", "\x81\x07"));
    CHECK(q.memory_bytes() > 0);
    q.written(q.buffered());
    q.clear_written();
    CHECK(q.empty());
    CHECK(q.memory_bytes() == 0);
    // Later bursts keep their (small) capacity: no allocation per batch on the send path.
    q.push(item("a"));
    q.push(item("b"));
    q.written(2);
    q.clear_written();
    CHECK(q.memory_bytes() > 0);
    // A large burst does not stay.
    for (int i = 0; i < 100; ++i) q.push(item("x"));
    q.written(100);
    q.clear_written();
    CHECK(q.memory_bytes() == 0);
}

TEST_CASE("output queue: a keyed item is withdrawn only while none of it is written",
          "[transport]") {
    output_queue q;
    CHECK_FALSE(q.withdraw("k"));  // nothing keyed yet
    q.push_keyed(item("A1", "\x81\x02"), "a");
    q.push(item("x", "\x81\x01"));
    q.push_keyed(item("B1", "\x81\x02"), "b");
    CHECK(q.buffered() == 4 + 3 + 4);

    // The first byte of A1 goes out: it is being written and stays.
    CHECK(q.written(1) == 10);
    CHECK_FALSE(q.withdraw("a"));
    // B1 is wholly unwritten: it leaves, un-counted, and a newer value goes behind the rest.
    CHECK(q.withdraw("b"));
    CHECK(q.buffered() == 10 - 4);
    CHECK_FALSE(q.withdraw("b"));  // withdrawn once
    q.push_keyed(item("B2", "\x81\x02"), "b");
    CHECK(gathered(q) == std::string("\x02") + "A1" + "\x81\x01" + "x" + "\x81\x02" + "B2");
    CHECK(q.written(10) == 0);
    CHECK(q.all_written());
    q.clear_written();
    CHECK_FALSE(q.withdraw("b"));  // the index goes with the items
}

TEST_CASE("output queue: withdrawn items are skipped however the queue is written", "[transport]") {
    // At the head, in the middle and at the end.
    output_queue q;
    q.push_keyed(item("k1"), "k");
    CHECK(q.withdraw("k"));
    q.push(item("mid"));
    q.push_keyed(item("k2"), "k");
    CHECK(q.withdraw("k"));
    CHECK(q.buffered() == 3);
    CHECK(gathered(q) == "mid");
    CHECK(q.written(3) == 0);
    CHECK(q.all_written());  // the trailing withdrawn item completes with nothing written
    q.clear_written();

    // Only the newest item of a key is withdrawn; other keys are untouched.
    q.push_keyed(item("a1"), "a");
    q.push_keyed(item("a2"), "a");
    q.push_keyed(item("c1"), "c");
    CHECK(q.withdraw("a"));
    CHECK(gathered(q) == "a1c1");
    // Handed over for an asynchronous write (TLS): nothing of it can be withdrawn.
    std::vector<out_item> in_flight;
    q.take(in_flight);
    CHECK_FALSE(q.withdraw("c"));
    CHECK(q.uncount(4) == 0);

    // drop() un-counts what is left, withdrawn items adding nothing.
    output_queue d;
    d.push_keyed(item("zz"), "z");
    d.push(item("yyy"));
    CHECK(d.withdraw("z"));
    d.drop();
    CHECK(d.buffered() == 0);
}

TEST_CASE("output queue: a peer that never catches up does not grow the queue's vector",
          "[transport]") {
    // Values of a few keys replacing each other while nothing is written: the withdrawn items
    // are compacted away, and the index still finds each key's newest item afterwards.
    output_queue q;
    q.push(item("first"));
    CHECK(q.written(2) == 3);  // the head is partly written, and stays first
    for (int i = 0; i < 10000; ++i) {
        const std::string key = "k" + std::to_string(i % 4);
        q.withdraw(key);
        q.push_keyed(item(key + "=" + std::to_string(1000 + i)), key);
    }
    CHECK(q.item_count() < 200);
    CHECK(q.buffered() == 3 + 4 * 8);
    CHECK(gathered(q) == "rstk0=10996k1=10997k2=10998k3=10999");
    CHECK(q.withdraw("k2"));
    CHECK(gathered(q) == "rstk0=10996k1=10997k3=10999");

    // Written items go too, when they are most of the vector (a reader that keeps up with a
    // queue that never quite empties).
    output_queue r;
    r.push(item("ab"));
    for (int i = 0; i < 10000; ++i) {
        r.push(item("ab"));
        CHECK(r.written(2) == 2);
    }
    CHECK(r.item_count() < 200);
    CHECK(gathered(r) == "ab");
}
