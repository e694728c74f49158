#include "gatehouse/jwt.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/errc.hpp"

// Known-answer tokens. Every literal token below was produced independently of gatehouse, with
// Python's standard library (/usr/bin/python3, Python 3.11), as
//
//     import base64, hashlib, hmac
//     def b64u(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
//     def tok(header, claims, key=b"gatehouse-test-secret"):
//         si = b64u(header.encode()) + "." + b64u(claims.encode())
//         return si + "." + b64u(hmac.new(key, si.encode(), hashlib.sha256).digest())
//
// with the header and claims JSON texts quoted above each one. All are correctly signed
// with `secret`, so an error from them comes from the part under test, not the signature.

namespace {

using gatehouse::errc;
using gatehouse::jwt_claims;
using gatehouse::verify_jwt;

constexpr std::string_view secret = "gatehouse-test-secret";
constexpr std::int64_t now = 1700000000;

// tok('{"alg":"HS256","typ":"JWT"}',
//     '{"exp":1700000900,"iat":1699999990,"roles":["admin","tester"],"sub":"player-42"}')
// (keys sorted and no spaces, as gatehouse's sign_jwt writes them; the claims are called "C"
// below).
constexpr std::string_view kat_token =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJleHAiOjE3MDAwMDA5MDAsImlhdCI6MTY5OTk5OTk5MCwicm9sZXMiOlsiYWRtaW4iLCJ0ZXN0ZXIiXSwic3ViIjoi"
    "cGxheWVyLTQyIn0.AQth3TDxx_qlHh5-0Ky-ImrNOvXzlrexFr2fYEAWxWg";

// The payload segment of C. "P" below is {"sub":"p","iat":1699999990,"exp":1700000900} with
// the extra members shown, and STD the header '{"alg":"HS256","typ":"JWT"}'.
constexpr std::string_view payload_c =
    "eyJleHAiOjE3MDAwMDA5MDAsImlhdCI6MTY5OTk5OTk5MCwicm9sZXMiOlsiYWRtaW4iLCJ0ZXN0ZXIiXSwic3ViIjoi"
    "cGxheWVyLTQyIn0";

std::string with_c(std::string_view header_b64, std::string_view sig_b64) {
    std::string t(header_b64);
    t += '.';
    t += payload_c;
    t += '.';
    t += sig_b64;
    return t;
}

// A well-formed result to check that failures leave `out` untouched.
jwt_claims sentinel() {
    jwt_claims c;
    c.sub = "untouched";
    c.iat = 1;
    c.exp = 2;
    c.roles = {"x"};
    return c;
}

std::error_code verify(std::string_view token, std::int64_t at = now,
                       std::string_view key = secret) {
    jwt_claims out = sentinel();
    const auto ec = verify_jwt(token, key, at, out);
    if (ec) {
        // Failure must not leave half-filled claims behind.
        CHECK(out.sub == "untouched");
        CHECK(out.roles == std::vector<std::string>{"x"});
    }
    return ec;
}

jwt_claims claims(std::string sub, std::int64_t iat, std::int64_t exp,
                  std::vector<std::string> roles = {}) {
    jwt_claims c;
    c.sub = std::move(sub);
    c.iat = iat;
    c.exp = exp;
    c.roles = std::move(roles);
    return c;
}

// The base64url alphabet, to reach the bits of a character in a test.
constexpr std::string_view alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

}  // namespace

TEST_CASE("jwt: a known-answer token made with Python verifies", "[jwt]") {
    jwt_claims out;
    REQUIRE_FALSE(verify_jwt(kat_token, secret, now, out));
    CHECK(out.sub == "player-42");
    CHECK(out.iat == 1699999990);
    CHECK(out.exp == 1700000900);
    CHECK(out.roles == std::vector<std::string>{"admin", "tester"});
}

TEST_CASE("jwt: sign_jwt reproduces the Python token byte for byte", "[jwt]") {
    const auto c = claims("player-42", 1699999990, 1700000900, {"admin", "tester"});
    CHECK(gatehouse::sign_jwt(c, secret) == kat_token);
    // Without roles the claim is left out: tok(STD,
    // '{"exp":1700000900,"iat":1699999990,"sub":"p"}')
    CHECK(gatehouse::sign_jwt(claims("p", 1699999990, 1700000900), secret) ==
          "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
          "eyJleHAiOjE3MDAwMDA5MDAsImlhdCI6MTY5OTk5OTk5MCwic3ViIjoicCJ9."
          "6GVfg4-bp_rpShHa7QwZe6o0ko_0G9MZEJHNYj85IIo");
}

TEST_CASE("jwt: RFC 7515 A.1 signature verifies, then its claims are refused", "[jwt]") {
    // RFC 7515 Appendix A.1: the JWK's "k" decoded to bytes (checked with Python's hmac that
    // it reproduces the RFC's signature). Its claims (iss, exp, a custom one) have no
    // sub/iat, so getting as far as invalid_token proves the header (which has CR LF
    // whitespace and typ before alg) and the signature passed.
    constexpr char key_bytes[] =
        "\x03\x23\x35\x4b\x2b\x0f\xa5\xbc\x83\x7e\x06\x65\x77\x7b\xa6\x8f\x5a\xb3\x28\xe6\xf0\x54"
        "\xc9\x28\xa9\x0f\x84\xb2\xd2\x50\x2e\xbf\xd3\xfb\x5a\x92\xd2\x06\x47\xef\x96\x8a\xb4\xc3"
        "\x77\x62\x3d\x22\x3d\x2e\x21\x72\x05\x2e\x4f\x08\xc0\xcd\x9a\xf5\x67\xd0\x80\xa3";
    const std::string_view key(key_bytes, sizeof key_bytes - 1);
    REQUIRE(key.size() == 64);
    constexpr std::string_view rfc_token =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
        "cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    CHECK(verify(rfc_token, 1300000000, key) == errc::invalid_token);
    CHECK(verify(rfc_token, 1300000000, secret) == errc::token_bad_signature);
    std::string other_key(key);
    other_key[0] = '\x04';
    CHECK(verify(rfc_token, 1300000000, other_key) == errc::token_bad_signature);
}

TEST_CASE("jwt: round trip with roles", "[jwt]") {
    const auto c = claims("pl\xC3\xA5yer \"7\"", now - 5, now + 900,
                          {"admin", "with \"quotes\" and \\", "", "r\xC3\xB4le"});
    const auto token = gatehouse::sign_jwt(c, secret);
    REQUIRE_FALSE(token.empty());
    jwt_claims out;
    REQUIRE_FALSE(verify_jwt(token, secret, now, out));
    CHECK(out.sub == c.sub);
    CHECK(out.iat == c.iat);
    CHECK(out.exp == c.exp);
    CHECK(out.roles == c.roles);

    SECTION("without roles") {
        const auto t = gatehouse::sign_jwt(claims("p", now, now + 1), secret);
        jwt_claims o = sentinel();
        REQUIRE_FALSE(verify_jwt(t, secret, now, o));
        CHECK(o.sub == "p");
        CHECK(o.roles.empty());
    }
    SECTION("extreme but representable times") {
        const auto max = std::numeric_limits<std::int64_t>::max();
        const auto t = gatehouse::sign_jwt(claims("p", -5, max), secret);
        jwt_claims o;
        REQUIRE_FALSE(verify_jwt(t, secret, now, o));
        CHECK(o.iat == -5);
        CHECK(o.exp == max);
    }
}

TEST_CASE("jwt: the header's typ is optional and case-insensitive", "[jwt]") {
    // tok('{"alg":"HS256"}', P)
    CHECK_FALSE(
        verify("eyJhbGciOiJIUzI1NiJ9."
               "eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwLCJleHAiOjE3MDAwMDA5MDB9."
               "ZYeTdpwcRjwxf-PeD17IuHGd26ft97vQDcvi2KWosiw"));
    // tok('{"typ":"jwt","alg":"HS256"}', C)
    CHECK_FALSE(verify(with_c("eyJ0eXAiOiJqd3QiLCJhbGciOiJIUzI1NiJ9",
                              "oP2PBz_k-cKf8-MBrTGLJPg2qEqGjSglLlKpgrgb6A4")));
    // tok('{"alg":"HS256","typ":"JWS"}', C)
    CHECK(verify(with_c("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXUyJ9",
                        "Srfmh33RzjIoIHmY-62-ZHBnwlFhD_KyNjsHJUxVRAo")) == errc::invalid_token);
    // tok('{"alg":"HS256","typ":1}', C)
    CHECK(verify(with_c("eyJhbGciOiJIUzI1NiIsInR5cCI6MX0",
                        "1av2Jjxt1LmsbW5VQ9W3_t0H0U5qrA-LN2ZstDdI3Rw")) == errc::invalid_token);
    // tok('{"alg":"HS256","crit":["exp"]}', C): a critical extension we do not implement.
    CHECK(verify(with_c("eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiZXhwIl19",
                        "VRnWPgrtVwufw5liKOymxUsZfQJaDkPsWwz6ERbJ218")) == errc::invalid_token);
}

TEST_CASE("jwt: every alg but HS256 is refused", "[jwt]") {
    // Each is HMAC-SHA256-signed with the right secret, so only the alg is wrong.
    // tok('{"alg":"none","typ":"JWT"}', C)
    const std::string none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    CHECK(verify(with_c(none_header, "38HfInNbnaqrFTzCn2YGx9_SkXkVdgOUd3lJJ56hwrg")) ==
          errc::token_algorithm_refused);
    // The unsecured JWS form: an empty signature segment.
    CHECK(verify(with_c(none_header, "")) == errc::token_algorithm_refused);
    // No signature segment at all is not even three segments.
    CHECK(verify(none_header + "." + std::string(payload_c)) == errc::invalid_token);
    // tok('{"alg":"HS512","typ":"JWT"}', C)
    CHECK(verify(with_c("eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9",
                        "mRWrDYPylSeSaWM42TdleRNOnhY7Qg19wsMZxkENOH0")) ==
          errc::token_algorithm_refused);
    // tok('{"alg":"RS256","typ":"JWT"}', C): the key-confusion attack.
    CHECK(verify(with_c("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9",
                        "_xuqbFsTKJnzbkxJ4oefFLsgWrLemwKTsw5VM0uhgbA")) ==
          errc::token_algorithm_refused);
    // tok('{"alg":"hs256","typ":"JWT"}', C): algorithm names are case-sensitive.
    CHECK(verify(with_c("eyJhbGciOiJoczI1NiIsInR5cCI6IkpXVCJ9",
                        "Ag8d-VdpA_t-tfkwJiqyfjWBRZ9A7WAHYWTippromhU")) ==
          errc::token_algorithm_refused);
    // tok('{"typ":"JWT"}', C)
    CHECK(verify(with_c("eyJ0eXAiOiJKV1QifQ", "Szz9Xj5rFqsCY4942ZYszDj8SD8T4XFWCywXDNe5Kj8")) ==
          errc::token_algorithm_refused);
    // tok('{"alg":256}', C)
    CHECK(verify(with_c("eyJhbGciOjI1Nn0", "7NT0VtKLcOdLImD-4JJjbABsR9W_8oDhYDG6tYGn7DI")) ==
          errc::token_algorithm_refused);
}

TEST_CASE("jwt: a header that is not a JSON object is malformed", "[jwt]") {
    // tok('["HS256"]', C)
    CHECK(verify(with_c("WyJIUzI1NiJd", "9e8o66mDIhx_qHgyTPKlyECgItOSzsq7yHObQteH_xM")) ==
          errc::invalid_token);
    // tok('HS256', C)
    CHECK(verify(with_c("SFMyNTY", "axkLXDNkeJOCH1K4PoXsWTHWUizklSoa2Dq8AyJ2gyw")) ==
          errc::invalid_token);
    // An empty header segment.
    CHECK(verify(with_c("", "axkLXDNkeJOCH1K4PoXsWTHWUizklSoa2Dq8AyJ2gyw")) == errc::invalid_token);
}

TEST_CASE("jwt: signatures", "[jwt]") {
    const std::string good(kat_token);
    const auto dot1 = good.find('.');
    const auto dot2 = good.rfind('.');

    SECTION("wrong secret") {
        CHECK(verify(good, now, "gatehouse-test-secreT") == errc::token_bad_signature);
        CHECK(verify(good, now, "gatehouse-test-secret ") == errc::token_bad_signature);
    }
    SECTION("tampered payload, still valid base64url") {
        // Swap the payload for one claiming another player; keep the signature.
        const auto forged = gatehouse::sign_jwt(
            claims("player-43", 1699999990, 1700000900, {"admin", "tester"}), "other secret");
        const std::string t = forged.substr(0, forged.rfind('.')) + good.substr(dot2);
        CHECK(verify(t) == errc::token_bad_signature);
        std::string u = good;
        u[dot1 + 5] = u[dot1 + 5] == 'A' ? 'B' : 'A';
        CHECK(verify(u) == errc::token_bad_signature);
    }
    SECTION("tampered header, still HS256") {
        // tok('{"alg":"HS256"}', ...) header spliced onto the KAT signature.
        CHECK(verify("eyJhbGciOiJIUzI1NiJ9" + good.substr(dot1)) == errc::token_bad_signature);
    }
    SECTION("tampered signature") {
        for (std::size_t i = dot2 + 1; i + 1 < good.size(); ++i) {
            std::string t = good;
            t[i] = t[i] == 'x' ? 'y' : 'x';
            INFO(t);
            CHECK(verify(t) == errc::token_bad_signature);
        }
    }
    SECTION("truncated, empty or lengthened signature") {
        CHECK(verify(good.substr(0, dot2 + 1)) == errc::token_bad_signature);
        // 40 characters: 30 bytes, a valid encoding of the wrong length.
        CHECK(verify(good.substr(0, good.size() - 3)) == errc::token_bad_signature);
        CHECK(verify(good + "AAAA") == errc::token_bad_signature);
    }
    SECTION("the signature is checked before the claims are read") {
        // tok('{"alg":"HS256","typ":"JWT"}', 'player-42'): claims that are not JSON; with a
        // bad signature the answer is about the signature.
        const std::string t =
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.cGxheWVyLTQy."
            "YJwLqRA2rMrqbxl5rElm6OvSQPjF-zwN0XC3rJDFdrs";
        CHECK(verify(t) == errc::invalid_token);
        CHECK(verify(t, now, "wrong") == errc::token_bad_signature);
        // An expired token with a bad signature is a bad signature, not an expired token.
        CHECK(verify(good, 1800000000, "wrong") == errc::token_bad_signature);
    }
    SECTION("an empty secret verifies nothing") {
        const auto t = gatehouse::sign_jwt(claims("p", now, now + 60), "");
        REQUIRE_FALSE(t.empty());
        CHECK(verify(t, now, "") == errc::token_bad_signature);
        CHECK(verify(good, now, "") == errc::token_bad_signature);
    }
}

TEST_CASE("jwt: expiry and issue time", "[jwt]") {
    const auto at = [](std::int64_t iat, std::int64_t exp) {
        return gatehouse::sign_jwt(claims("p", iat, exp), secret);
    };
    CHECK_FALSE(verify(at(now, now + 1)));
    CHECK(verify(at(now - 10, now)) == errc::token_expired);
    CHECK(verify(at(now - 10, now - 1)) == errc::token_expired);
    CHECK(verify(at(now - 10, std::numeric_limits<std::int64_t>::min())) == errc::token_expired);
    CHECK_FALSE(verify(kat_token, 1700000899));
    CHECK(verify(kat_token, 1700000900) == errc::token_expired);

    // The default skew is 60 seconds.
    CHECK_FALSE(verify(at(now + 60, now + 900)));
    CHECK(verify(at(now + 61, now + 900)) == errc::token_issued_in_future);
    CHECK(verify(at(std::numeric_limits<std::int64_t>::max(),
                    std::numeric_limits<std::int64_t>::max())) == errc::token_issued_in_future);

    gatehouse::jwt_verify_options strict;
    strict.max_clock_skew = std::chrono::seconds(0);
    jwt_claims out;
    CHECK_FALSE(verify_jwt(at(now, now + 900), secret, now, out, strict));
    CHECK(verify_jwt(at(now + 1, now + 900), secret, now, out, strict) ==
          errc::token_issued_in_future);
    gatehouse::jwt_verify_options negative;
    negative.max_clock_skew = std::chrono::seconds(-100);
    // A negative skew counts as none; it must not switch the check off.
    CHECK_FALSE(verify_jwt(at(now, now + 900), secret, now, out, negative));
    CHECK(verify_jwt(at(now + 1, now + 900), secret, now, out, negative) ==
          errc::token_issued_in_future);
    gatehouse::jwt_verify_options lenient;
    lenient.max_clock_skew = std::chrono::seconds(3600);
    CHECK_FALSE(verify_jwt(at(now + 3600, now + 7200), secret, now, out, lenient));

    // Near the end of time: no overflow in `now + skew`.
    const auto end = std::numeric_limits<std::int64_t>::max();
    CHECK_FALSE(verify(at(end - 1, end), end - 1));
    // And near its start.
    const auto start = std::numeric_limits<std::int64_t>::min();
    CHECK(verify(at(end, end), start) == errc::token_issued_in_future);

    SECTION("nbf, when present, gets the same skew as iat") {
        // tok(STD, P + ',"nbf":1700000061')
        CHECK(verify("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                     "eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwLCJleHAiOjE3MDAwMDA5MDAsIm5iZiI6MTcwMDAw"
                     "MDA2MX0.E5MS_R1PX8L4hlMVuGRH8nbfVkgb3v1mBoqDXv3mgIU") ==
              errc::token_issued_in_future);
        // tok(STD, P + ',"nbf":1700000060')
        CHECK_FALSE(
            verify("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                   "eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwLCJleHAiOjE3MDAwMDA5MDAsIm5iZiI6MTcw"
                   "MDAwMDA2MH0.z61PUkupWTXIgEJMkWMX6CzZIYabbEzsSA9qWy9Wsxc"));
        // tok(STD, P + ',"nbf":1.5')
        CHECK(verify("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                     "eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwLCJleHAiOjE3MDAwMDA5MDAsIm5iZiI6MS41fQ."
                     "PyNtrsXLCuvtsYVywZaykb1cUd7dJ0XBHWkZ1zJ22j8") == errc::invalid_token);
    }
}

TEST_CASE("jwt: missing or mistyped claims", "[jwt]") {
    // Each: tok('{"alg":"HS256","typ":"JWT"}', claims shown).
    struct kat {
        const char* claims_json;
        const char* token;
    };
    const kat cases[] = {
        {R"([])",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.W10.A1-SpYL_xvHHK600dE4U0hAnNp-CdKfkZfa6ZnKz6_w"},
        {R"(player-42)",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.cGxheWVyLTQy."
         "YJwLqRA2rMrqbxl5rElm6OvSQPjF-zwN0XC3rJDFdrs"},
        {R"({"iat":1699999990,"exp":1700000900})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
         "eyJpYXQiOjE2OTk5OTk5OTAsImV4cCI6MTcwMDAwMDkwMH0."
         "uf1nhyvjpcgEDYV7T4QEFlOnudcMnIeU8yqFwyLWMm4"},
        {R"({"sub":"","iat":1699999990,"exp":1700000900})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
         "eyJzdWIiOiIiLCJpYXQiOjE2OTk5OTk5OTAsImV4cCI6MTcwMDAwMDkwMH0."
         "HUxgXdFFhDjLfMTxX-YIkHZ7QOFktoiLKUZ7JyKsK4g"},
        {R"({"sub":42,"iat":1699999990,"exp":1700000900})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
         "eyJzdWIiOjQyLCJpYXQiOjE2OTk5OTk5OTAsImV4cCI6MTcwMDAwMDkwMH0."
         "SijHmhxTaEYqf-IB1NlqHqf9TCXgkXBrO8-jz7x2x0Y"},
        {R"({"sub":"p","iat":1699999990})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwfQ."
         "Mc30XKzsaG20tcNV_w8rEFWEkBwG_aCl-6cLMV_pUbc"},
        {R"({"sub":"p","exp":1700000900})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwIiwiZXhwIjoxNzAwMDAwOTAwfQ."
         "V_JZ87d1A1yKJuzoAToLKRQJPI5bWENINZZ8yCUIwzI"},
        {R"({"sub":"p","iat":1699999990,"exp":1700000900.0})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
         "eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwLCJleHAiOjE3MDAwMDA5MDAuMH0."
         "o1NO0LuE8FtoGXwcGArMjoHQH7z6MGYwC7ZedEMvLrY"},
        {R"({"sub":"p","iat":1699999990,"exp":1.7000009e9})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
         "eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwLCJleHAiOjEuNzAwMDAwOWU5fQ."
         "8aFzHtPVmPZ4aOrhVv7S9cH3Kt7EbVD58cz9DmwhAoI"},
        {R"({"sub":"p","iat":1699999990,"exp":"1700000900"})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
         "eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwLCJleHAiOiIxNzAwMDAwOTAwIn0."
         "JuE_baOvQv4Q-dCVVYc2zj5D_omcGVJk9gQs5Bwqoxs"},
        {R"({"sub":"p","iat":1699999990,"exp":18446744073709551615})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
         "eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwLCJleHAiOjE4NDQ2NzQ0MDczNzA5NTUxNjE1fQ."
         "8PyjQo8FqRTxG7AH8tmYMClHDrx_2WXDWcdyluyMNyc"},
        {R"({"sub":"p","iat":1699999990.5,"exp":1700000900})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
         "eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwLjUsImV4cCI6MTcwMDAwMDkwMH0."
         "dQIdAsm5W1g7jY493eOpg2ykdPHAhQpf4lHyo8FxsSk"},
        {R"({"sub":"p","iat":1699999990,"exp":1700000900,"roles":"admin"})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
         "eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwLCJleHAiOjE3MDAwMDA5MDAsInJvbGVzIjoiYWRtaW4ifQ."
         "3z56HVgV3E83aGWh31u3shsa4-u1jJr00fTXPf_L8uY"},
        {R"({"sub":"p","iat":1699999990,"exp":1700000900,"roles":["admin",1]})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
         "eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwLCJleHAiOjE3MDAwMDA5MDAsInJvbGVzIjpbImFkbWluIiwxXX0."
         "nJZ-oRdLEKGQCG3zDBt9HZ8xJzbfIMdZYyk87HLldrE"},
        {R"({"sub":"p","iat":1699999990,"exp":1700000900,"roles":null})",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
         "eyJzdWIiOiJwIiwiaWF0IjoxNjk5OTk5OTkwLCJleHAiOjE3MDAwMDA5MDAsInJvbGVzIjpudWxsfQ."
         "FnzYVGcekCCZRqvHtfB7lc7qx69ZjlRTi3IBQ18XHAg"},
    };
    for (const auto& c : cases) {
        INFO(c.claims_json);
        CHECK(verify(c.token) == errc::invalid_token);
        // The same token under another key fails on its signature first.
        CHECK(verify(c.token, now, "another secret") == errc::token_bad_signature);
    }
}

TEST_CASE("jwt: structure and base64url", "[jwt]") {
    const std::string good(kat_token);
    const auto dot1 = good.find('.');
    const auto dot2 = good.rfind('.');
    const std::string header = good.substr(0, dot1);
    const std::string payload = good.substr(dot1 + 1, dot2 - dot1 - 1);
    const std::string sig = good.substr(dot2 + 1);
    REQUIRE_FALSE(verify(good));

    SECTION("segment count") {
        CHECK(verify("") == errc::invalid_token);
        CHECK(verify(".") == errc::invalid_token);
        CHECK(verify("..") == errc::invalid_token);
        CHECK(verify("...") == errc::invalid_token);
        CHECK(verify(header + "." + payload) == errc::invalid_token);
        CHECK(verify(good + ".") == errc::invalid_token);
        CHECK(verify(good + "." + sig) == errc::invalid_token);
        CHECK(verify(header + "." + header + "." + payload + "." + sig) == errc::invalid_token);
    }
    SECTION("characters outside the base64url alphabet") {
        for (const char bad : {'+', '/', '=', ' ', '\n', '\0', '*', '\x80', '\xff'}) {
            for (const std::size_t at : {std::size_t{3}, dot1 + 3, dot2 + 3}) {
                std::string t = good;
                t[at] = bad;
                INFO("byte " << static_cast<int>(static_cast<unsigned char>(bad)) << " at " << at);
                CHECK(verify(t) == errc::invalid_token);
            }
        }
        // Whitespace around the token is not trimmed.
        CHECK(verify(" " + good) == errc::invalid_token);
        CHECK(verify(good + "\n") == errc::invalid_token);
    }
    SECTION("padding is refused") {
        // 32 bytes encode to 43 characters; the padded form has one '='.
        CHECK(verify(good + "=") == errc::invalid_token);
        // tok-like, but the payload segment keeps its '==' padding and the signature covers
        // exactly that text (base64.urlsafe_b64encode without the rstrip), so only the
        // padding is wrong.
        CHECK(verify("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                     "eyJzdWIiOiJwcCIsImlhdCI6MTY5OTk5OTk5MCwiZXhwIjoxNzAwMDAwOTAwfQ==."
                     "qeLFHCu80_jOGmHYLJ3dFGGS8yvPcpkMoK4-rdh8nuE") == errc::invalid_token);
        // The same claims unpadded (tok(STD, '{"sub":"pp",...}')) are fine.
        CHECK_FALSE(
            verify("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                   "eyJzdWIiOiJwcCIsImlhdCI6MTY5OTk5OTk5MCwiZXhwIjoxNzAwMDAwOTAwfQ."
                   "XTs8CcQarUIc3kvsawic_q9dd2iMQsP0JRAcqGNvjuo"));
    }
    SECTION("impossible length and non-canonical trailing bits") {
        // 4k+1 characters encode nothing.
        CHECK(verify(header + "." + payload + "." + sig + "AA") == errc::invalid_token);
        // 43 characters carry 258 bits for 256: the last character's low 2 bits are unused
        // and must be zero, else one signature would have several spellings.
        const auto last = alphabet.find(sig.back());
        REQUIRE(last != std::string_view::npos);
        REQUIRE((last & 3U) == 0);
        for (std::size_t low = 1; low < 4; ++low) {
            std::string t = good;
            t.back() = alphabet[last | low];
            INFO(t);
            CHECK(verify(t) == errc::invalid_token);
        }
    }
    SECTION("tokens over 8 KiB are refused, at the exact boundary") {
        // Grow `sub` until the signed token is exactly 8192, then 8193 bytes long.
        // (Unpadded base64url reaches every length but 4k+1; both of these are reachable.)
        std::string at_limit, over_limit;
        for (std::size_t n = 5800; n < 6300 && (at_limit.empty() || over_limit.empty()); ++n) {
            auto t = gatehouse::sign_jwt(claims(std::string(n, 'a'), now, now + 60), secret);
            if (t.size() == 8192) at_limit = t;
            if (t.size() == 8193) over_limit = t;
        }
        REQUIRE(at_limit.size() == 8192);
        REQUIRE(over_limit.size() == 8193);
        CHECK_FALSE(verify(at_limit));
        CHECK(verify(over_limit) == errc::invalid_token);
        CHECK(verify(std::string(1 << 20, 'A')) == errc::invalid_token);
    }
}

TEST_CASE("jwt: sign_jwt refuses claims JSON cannot carry", "[jwt]") {
    CHECK(gatehouse::sign_jwt(claims("bad\xff", now, now + 60), secret).empty());
    CHECK(gatehouse::sign_jwt(claims("p", now, now + 60, {"ok", "\xc3"}), secret).empty());
}

TEST_CASE("jwt: unix_now_seconds follows the system clock", "[jwt]") {
    const auto before = static_cast<std::int64_t>(std::time(nullptr));
    const auto t = gatehouse::unix_now_seconds();
    const auto after = static_cast<std::int64_t>(std::time(nullptr));
    CHECK(t >= before);
    CHECK(t <= after + 1);
    CHECK(t > 1600000000);
}
