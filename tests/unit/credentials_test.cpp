#include "gatehouse/credentials.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using gatehouse::hash_password;
using gatehouse::hash_refresh_token;
using gatehouse::make_decoy_password_hash;
using gatehouse::make_refresh_token;
using gatehouse::password_hash_cost;
using gatehouse::valid_password_hash_cost;
using gatehouse::verify_password;

// The cheapest cost libsodium allows for Argon2id (1 pass, 8 KiB): tests stay fast, and the
// encoded parameters below prove the cost really reached libsodium.
constexpr password_hash_cost cheap{1, 8192};

std::string hash_of(std::string_view password, const password_hash_cost& cost = cheap) {
    std::string out;
    const auto ec = hash_password(password, out, cost);
    REQUIRE_FALSE(ec);
    return out;
}

}  // namespace

TEST_CASE("hash_password writes an Argon2id string that verifies", "[credentials]") {
    const std::string h = hash_of("correct horse battery staple");
    CHECK(h.rfind("$argon2id$v=19$m=8,t=1,p=1$", 0) == 0);
    CHECK(verify_password(h, "correct horse battery staple"));
    CHECK_FALSE(verify_password(h, "correct horse battery stapler"));
    CHECK_FALSE(verify_password(h, "Correct horse battery staple"));
    CHECK_FALSE(verify_password(h, ""));
}

TEST_CASE("hash_password salts every hash", "[credentials]") {
    const std::string a = hash_of("same password");
    const std::string b = hash_of("same password");
    CHECK(a != b);
    CHECK(verify_password(a, "same password"));
    CHECK(verify_password(b, "same password"));
}

TEST_CASE("hash_password hashes every byte, NULs and empty passwords included", "[credentials]") {
    using namespace std::string_view_literals;
    const std::string h = hash_of("ab\0cd"sv);
    CHECK(verify_password(h, "ab\0cd"sv));
    CHECK_FALSE(verify_password(h, "ab"));
    CHECK_FALSE(verify_password(h, "ab\0ce"sv));

    const std::string empty = hash_of("");
    CHECK(verify_password(empty, ""));
    CHECK_FALSE(verify_password(empty, "x"));
}

TEST_CASE("hash_password with the default cost", "[credentials]") {
    // The one test at the production cost (64 MiB, 2 passes).
    const std::string h = hash_of("a real password", password_hash_cost{});
    CHECK(h.rfind("$argon2id$v=19$m=65536,t=2,p=1$", 0) == 0);
    CHECK(verify_password(h, "a real password"));
    CHECK_FALSE(verify_password(h, "a real passwore"));
}

TEST_CASE("hash_password refuses costs outside libsodium's limits", "[credentials]") {
    const std::vector<password_hash_cost> bad = {
        {0, 8192},                                     // no pass
        {1, 8191},                                     // below 8 KiB
        {1, 0},                                        // no memory
        {std::uint64_t{1} << 32U, 8192},               // above OPSLIMIT_MAX
        {1, std::numeric_limits<std::size_t>::max()},  // above MEMLIMIT_MAX
        {std::numeric_limits<std::uint64_t>::max(), std::size_t{64} << 20},
    };
    for (const auto& cost : bad) {
        CHECK_FALSE(valid_password_hash_cost(cost));
        std::string out = "untouched";
        CHECK(hash_password("password", out, cost) == std::errc::invalid_argument);
        CHECK(out == "untouched");
        // And no decoy either.
        std::string decoy = "untouched";
        CHECK(make_decoy_password_hash(decoy, cost) == std::errc::invalid_argument);
        CHECK(decoy == "untouched");
    }
}

TEST_CASE("valid_password_hash_cost takes what hash_password takes, hashing nothing",
          "[credentials]") {
    CHECK(valid_password_hash_cost({}));
    CHECK(valid_password_hash_cost({1, 8192}));
    // Far more memory than this machine has: still only a range check.
    CHECK(valid_password_hash_cost({1, std::size_t{1} << 40U}));
}

TEST_CASE("verify_password is false for anything malformed", "[credentials]") {
    using namespace std::string_view_literals;
    const std::string h = hash_of("pw");
    REQUIRE(verify_password(h, "pw"));

    CHECK_FALSE(verify_password("", "pw"));
    CHECK_FALSE(verify_password("pw", "pw"));
    CHECK_FALSE(verify_password("$argon2id$", "pw"));
    CHECK_FALSE(verify_password(h.substr(0, h.size() - 1), "pw"));  // truncated
    CHECK_FALSE(verify_password(h + "A", "pw"));                    // one more character
    CHECK_FALSE(verify_password(h + std::string(200, 'A'), "pw"));  // longer than STRBYTES
    CHECK_FALSE(verify_password(std::string(h).append("\0"sv), "pw"));

    std::string nul_inside = h;
    nul_inside[5] = '\0';
    CHECK_FALSE(verify_password(nul_inside, "pw"));

    // One character of the hash itself changed.
    std::string flipped = h;
    flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
    CHECK_FALSE(verify_password(flipped, "pw"));

    // Another algorithm's name in front of Argon2id's parameters.
    std::string renamed = h;
    renamed.replace(0, 10, "$argon2d$");
    CHECK_FALSE(verify_password(renamed, "pw"));
}

TEST_CASE("make_decoy_password_hash is a fresh hash at the cost that matches no password",
          "[credentials]") {
    std::string a, b;
    REQUIRE_FALSE(make_decoy_password_hash(a, cheap));
    REQUIRE_FALSE(make_decoy_password_hash(b, cheap));
    CHECK(a != b);  // a fresh random password (and salt) each time: no state kept
    CHECK(a.rfind("$argon2id$v=19$m=8,t=1,p=1$", 0) == 0);
    CHECK_FALSE(verify_password(a, ""));
    CHECK_FALSE(verify_password(a, "password"));

    std::string c;
    REQUIRE_FALSE(make_decoy_password_hash(c, password_hash_cost{2, 16384}));
    CHECK(c.rfind("$argon2id$v=19$m=16,t=2,p=1$", 0) == 0);
}

TEST_CASE("make_refresh_token is 43 characters of base64url from 32 random bytes",
          "[credentials]") {
    std::set<std::string> seen;
    for (int i = 0; i < 200; ++i) {
        const std::string t = make_refresh_token();
        REQUIRE(t.size() == 43);
        for (const char c : t) {
            const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_';
            CHECK(ok);
        }
        // 43 characters carry 258 bits for 256: the last one holds 4 bits of data and 2 zero
        // bits, so its value is a multiple of 4 when the encoding is canonical.
        CHECK(std::string_view("AEIMQUYcgkosw048").find(t.back()) != std::string_view::npos);
        seen.insert(t);
    }
    CHECK(seen.size() == 200);
}

TEST_CASE("hash_refresh_token is the lowercase hex SHA-256", "[credentials]") {
    // FIPS 180-2 test vectors.
    CHECK(hash_refresh_token("") ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(hash_refresh_token("abc") ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(hash_refresh_token("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    const std::string token = make_refresh_token();
    const std::string h = hash_refresh_token(token);
    CHECK(h.size() == 64);
    CHECK(h.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(h == hash_refresh_token(token));
    CHECK(h != hash_refresh_token(make_refresh_token()));
}
