#include "transport/ws_deflate.hpp"

#include <zlib.h>
#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace {

using gatehouse::detail::message_inflater;
using gatehouse::detail::negotiate_deflate;
using status = message_inflater::status;

const std::string full_answer =
    "permessage-deflate; server_no_context_takeover; "
    "client_no_context_takeover";

// Raw deflate as a permessage-deflate sender makes it (RFC 7692 7.2.1): `flush` at the end,
// and with Z_SYNC_FLUSH the trailing 0x00 0x00 0xff 0xff removed.
std::string compress(std::string_view in, int flush = Z_SYNC_FLUSH, int level = 6,
                     int window_bits = 15) {
    z_stream z{};
    REQUIRE(deflateInit2(&z, level, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    std::string out(deflateBound(&z, static_cast<uLong>(in.size())) + 16, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&z, flush);
    REQUIRE((rc == Z_OK || rc == Z_STREAM_END));
    REQUIRE(z.avail_in == 0);
    out.resize(out.size() - z.avail_out);
    deflateEnd(&z);
    if (flush == Z_SYNC_FLUSH) {
        REQUIRE(out.substr(out.size() - 4) == std::string("\x00\x00\xff\xff", 4));
        out.resize(out.size() - 4);
    }
    return out;
}

// Some text that compresses, but not to nothing.
std::string sample(std::size_t n) {
    std::string s;
    std::uint32_t x = 12345;
    while (s.size() < n) {
        x = x * 1103515245U + 12345U;
        s += "word" + std::to_string((x >> 16) % 300) + ' ';
    }
    s.resize(n);
    return s;
}

}  // namespace

// --- negotiation ---

TEST_CASE("ws deflate: a plain offer gets no context takeover both ways", "[ws_deflate]") {
    const auto r = negotiate_deflate({"permessage-deflate"});
    CHECK(r.accepted);
    CHECK(r.response == full_answer);
    // Chrome's and Firefox's offer.
    const auto browser = negotiate_deflate({"permessage-deflate; client_max_window_bits"});
    CHECK(browser.accepted);
    CHECK(browser.response == full_answer);
}

TEST_CASE("ws deflate: no offer, no extension", "[ws_deflate]") {
    CHECK_FALSE(negotiate_deflate({}).accepted);
    CHECK_FALSE(negotiate_deflate({""}).accepted);
    CHECK_FALSE(negotiate_deflate({"x-webkit-deflate-frame", "permessage-foo"}).accepted);
    CHECK(negotiate_deflate({"x-webkit-deflate-frame"}).response.empty());
}

TEST_CASE("ws deflate: window bits and context takeover parameters", "[ws_deflate]") {
    // server_max_window_bits is answered with the value offered (RFC 7692 7.1.2.1).
    auto r = negotiate_deflate({"permessage-deflate; server_max_window_bits=10"});
    CHECK(r.accepted);
    CHECK(r.response == full_answer + "; server_max_window_bits=10");
    r = negotiate_deflate(
        {"permessage-deflate;server_max_window_bits=\"8\";client_max_window_bits=15"
         ";server_no_context_takeover;client_no_context_takeover"});
    CHECK(r.accepted);
    CHECK(r.response == full_answer + "; server_max_window_bits=8");
    r = negotiate_deflate({"Permessage-Deflate ; CLIENT_MAX_WINDOW_BITS = 9"});
    CHECK(r.accepted);
    CHECK(r.response == full_answer);
}

TEST_CASE("ws deflate: bad offers are declined and the next one is taken", "[ws_deflate]") {
    for (const char* bad : {
             "permessage-deflate; server_max_window_bits",        // value required
             "permessage-deflate; server_max_window_bits=7",      // 8-15
             "permessage-deflate; server_max_window_bits=16",     //
             "permessage-deflate; server_max_window_bits=010",    // no leading zeros
             "permessage-deflate; client_max_window_bits=0",      //
             "permessage-deflate; client_max_window_bits=abc",    //
             "permessage-deflate; server_no_context_takeover=1",  // a flag
             "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
             "permessage-deflate; server_max_window_bits=9; server_max_window_bits=9",
             "permessage-deflate; unknown_param",  //
             "permessage-deflate; =1",             // malformed
             "permessage-deflate x",               //
         }) {
        INFO(bad);
        CHECK_FALSE(negotiate_deflate({bad}).accepted);
        const auto r = negotiate_deflate(
            {std::string(bad) + ", permessage-deflate; server_max_window_bits=12"});
        CHECK(r.accepted);
        CHECK(r.response == full_answer + "; server_max_window_bits=12");
    }
}

TEST_CASE("ws deflate: an open quoted string runs to the end of the header", "[ws_deflate]") {
    CHECK_FALSE(negotiate_deflate({"permessage-deflate; client_max_window_bits=\"10, "
                                   "permessage-deflate"})
                    .accepted);
    CHECK(
        negotiate_deflate({"permessage-deflate; client_max_window_bits=\"10", "permessage-deflate"})
            .accepted);
}

TEST_CASE("ws deflate: offers over several headers and lists", "[ws_deflate]") {
    const auto r =
        negotiate_deflate({"x-foo; a=\"b,c\", permessage-deflate; unknown=1", ", ,",
                           "permessage-deflate; server_max_window_bits=11, permessage-deflate"});
    CHECK(r.accepted);
    CHECK(r.response == full_answer + "; server_max_window_bits=11");
}

// --- inflation ---

TEST_CASE("ws deflate: inflates what zlib compressed", "[ws_deflate]") {
    const message_inflater inflater;
    for (const std::size_t n : {0U, 1U, 100U, 5000U, 100000U}) {
        const std::string text = sample(n);
        for (const int level : {0, 1, 9}) {
            std::string out = "prefix:";
            REQUIRE(inflater.inflate(compress(text, Z_SYNC_FLUSH, level), 200000, out) ==
                    status::ok);
            CHECK(out == "prefix:" + text);
        }
        // A smaller window is read with the largest (client_max_window_bits).
        std::string out;
        REQUIRE(inflater.inflate(compress(text, Z_SYNC_FLUSH, 9, 9), 200000, out) == status::ok);
        CHECK(out == text);
        // BFINAL instead of a sync flush (RFC 7692 7.2.3.3).
        out.clear();
        REQUIRE(inflater.inflate(compress(text, Z_FINISH), 200000, out) == status::ok);
        CHECK(out == text);
    }
    // The empty message, as sent: a single 0x00 (an empty fixed block, RFC 7692 7.2.3.6), or
    // nothing at all.
    std::string out;
    CHECK(inflater.inflate(std::string_view("\x00", 1), 10, out) == status::ok);
    CHECK(inflater.inflate("", 10, out) == status::ok);
    CHECK(out.empty());
    // RFC 7692 7.2.3.1's example: "Hello".
    CHECK(inflater.inflate(std::string_view("\xf2\x48\xcd\xc9\xc9\x07\x00", 7), 5, out) ==
          status::ok);
    CHECK(out == "Hello");
}

TEST_CASE("ws deflate: N bytes inflate, N+1 are too big", "[ws_deflate]") {
    const message_inflater inflater;
    for (const std::size_t n : {0U, 1U, 255U, 256U, 4096U, 65536U}) {
        INFO("n = " << n);
        const std::string text = sample(n + 1);
        std::string out;
        CHECK(inflater.inflate(compress(text.substr(0, n)), n, out) == status::ok);
        CHECK(out == text.substr(0, n));
        out = "kept";
        CHECK(inflater.inflate(compress(text), n, out) == status::too_big);
        CHECK(out == "kept");
    }
}

TEST_CASE("ws deflate: a decompression bomb is refused without allocating its output",
          "[ws_deflate]") {
    // 1 GiB of zeros compresses to about 1 MiB.
    std::string bomb;
    {
        z_stream z{};
        REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
        std::string zeros(1 << 20, '\0');
        std::string buf(1 << 16, '\0');
        for (int i = 0; i < 1024; ++i) {
            z.next_in = reinterpret_cast<Bytef*>(zeros.data());
            z.avail_in = static_cast<uInt>(zeros.size());
            do {
                z.next_out = reinterpret_cast<Bytef*>(buf.data());
                z.avail_out = static_cast<uInt>(buf.size());
                deflate(&z, i == 1023 ? Z_SYNC_FLUSH : Z_NO_FLUSH);
                bomb.append(buf.data(), buf.size() - z.avail_out);
            } while (z.avail_out == 0);
        }
        deflateEnd(&z);
        bomb.resize(bomb.size() - 4);
    }
    CHECK(bomb.size() < (2 << 20));
    const message_inflater inflater;
    std::string out;
    CHECK(inflater.inflate(bomb, 65536, out) == status::too_big);
    CHECK(out.empty());
    // At most the limit (and the string's own doubling) was ever allocated.
    CHECK(out.capacity() <= 2 * (65536 + 1));
}

TEST_CASE("ws deflate: corrupt data", "[ws_deflate]") {
    const message_inflater inflater;
    std::string out = "kept";
    // Block type 3 is reserved (RFC 1951 3.2.3).
    CHECK(inflater.inflate("\xff\xff\xff", 100, out) == status::corrupt);
    CHECK(out == "kept");
    // A stored block whose NLEN is not LEN's complement.
    CHECK(inflater.inflate(std::string_view("\x00\x05\x00\x00\x00hello", 10), 100, out) ==
          status::corrupt);
    // A message cut inside a block.
    const std::string z = compress(sample(3000));
    for (const std::size_t cut : {std::size_t{1}, z.size() / 2, z.size() - 2}) {
        INFO("cut at " << cut);
        CHECK(inflater.inflate(std::string_view(z).substr(0, cut), 100000, out) == status::corrupt);
        CHECK(out == "kept");
    }
    // A stored block cut short.
    CHECK(inflater.inflate(std::string_view("\x00\x05\x00\xfa\xffhel", 8), 100, out) ==
          status::corrupt);
}
