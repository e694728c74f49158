#include "gatehouse/user_store.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>  // mkdtemp
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "accounts/postgres_user_store.hpp"
#include "accounts/sqlite_user_store.hpp"
#include "gatehouse/credentials.hpp"
#include "gatehouse/errc.hpp"
#include "unit/postgres_server_fixture.hpp"

namespace {

namespace fs = std::filesystem;
using gatehouse::errc;
using gatehouse::open_user_store;
using gatehouse::refresh_token_record;
using gatehouse::user_record;
using gatehouse::user_store;
using gatehouse::detail::sqlite_schema_step;

constexpr std::int64_t now = 1'700'000'000'000;
constexpr std::int64_t hour = 3'600'000;

// A log sink that appends what the store says to `text` (why it could not open a database).
gatehouse::log_sink into(std::string& text) {
    return [&text](gatehouse::log_level, std::string_view message) { text.append(message); };
}

// A fresh directory per test, removed with everything in it.
class temp_dir {
public:
    temp_dir() {
        std::string pattern = (fs::temp_directory_path() / "gatehouse-user-store-XXXXXX").string();
        const char* made = mkdtemp(pattern.data());
        REQUIRE(made != nullptr);
        path_ = made;
    }
    ~temp_dir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    std::string file(std::string_view name) const { return (path_ / name).string(); }

private:
    fs::path path_;
};

std::unique_ptr<user_store> open(const std::string& url) {
    std::unique_ptr<user_store> store;
    std::string problem;
    const auto ec = open_user_store(url, store, into(problem));
    INFO(url << ": " << problem);
    REQUIRE_FALSE(ec);
    REQUIRE(store != nullptr);
    return store;
}

// The stores every generic test runs against (GENERATE: once each).
#define EACH_STORE GENERATE(as<std::string>{}, "sqlite", "postgresql")

// A fresh, empty database of one kind, shared by every store opened on it: a SQLite file in
// a temporary directory, or a database of its own on the test PostgreSQL.
class backing {
public:
    explicit backing(std::string kind) : kind_(std::move(kind)) {
        if (kind_ == "sqlite") {
            url_ = "sqlite:" + dir_.file("users.db");
        } else {
            pg_ = std::make_unique<gatehouse_test::postgres_database>();
            url_ = pg_->url();
        }
    }

    const std::string& kind() const { return kind_; }
    const std::string& url() const { return url_; }
    std::unique_ptr<user_store> open() const;
    const gatehouse_test::postgres_database& pg() const { return *pg_; }

    // The migration list of this build, for this kind.
    std::vector<std::string_view> migrations() const {
        return kind_ == "sqlite" ? gatehouse::detail::sqlite_migrations()
                                 : gatehouse::detail::postgres_migrations();
    }

    // Opens the database as a build whose migration list is `migrations` would.
    std::error_code open_with(const std::vector<std::string_view>& migrations,
                              std::unique_ptr<user_store>& out, std::string& problem) const {
        if (kind_ == "sqlite") {
            return gatehouse::detail::open_sqlite_user_store(url_.substr(7), migrations, out,
                                                             into(problem));
        }
        return gatehouse::detail::open_postgres_user_store(url_, migrations, {}, out,
                                                           into(problem));
    }

private:
    std::string kind_;
    temp_dir dir_;
    std::unique_ptr<gatehouse_test::postgres_database> pg_;
    std::string url_;
};

std::vector<sqlite_schema_step> history(user_store& store) {
    std::vector<sqlite_schema_step> steps;
    if (gatehouse::detail::sqlite_schema_history(store, steps)) {
        REQUIRE_FALSE(gatehouse::detail::postgres_schema_history(store, steps));
    }
    return steps;
}

std::unique_ptr<user_store> backing::open() const { return ::open(url_); }

user_record make_user(std::string username, std::string email) {
    user_record u;
    u.username = std::move(username);
    u.email = std::move(email);
    u.password_hash = "$argon2id$not-a-real-hash";
    return u;
}

user_record create(user_store& store, std::string username, std::string email) {
    user_record u = make_user(std::move(username), std::move(email));
    const auto ec = store.create_user(u);
    INFO(ec.message());
    REQUIRE_FALSE(ec);
    return u;
}

// A login: a new family with one live token. Returns the token's hash.
std::string login(user_store& store, const std::string& player_id,
                  std::int64_t expires = now + hour) {
    refresh_token_record t;
    t.token_hash = gatehouse::hash_refresh_token(gatehouse::make_refresh_token());
    t.family_id = "f_" + gatehouse::make_refresh_token();
    t.player_id = player_id;
    t.expires_at_ms = expires;
    REQUIRE_FALSE(store.add_refresh_token(t));
    return t.token_hash;
}

// Presents `hash` for rotation; on success `next_hash` is the new token's.
std::error_code rotate(user_store& store, const std::string& hash, std::string& next_hash,
                       std::int64_t at = now) {
    refresh_token_record next;
    next.token_hash = gatehouse::hash_refresh_token(gatehouse::make_refresh_token());
    next.expires_at_ms = at + hour;
    const auto ec = store.rotate_refresh_token(hash, at, next);
    if (!ec) next_hash = next.token_hash;
    return ec;
}

std::error_code rotate(user_store& store, const std::string& hash, std::int64_t at = now) {
    std::string ignored;
    return rotate(store, hash, ignored, at);
}

}  // namespace

TEST_CASE("a sqlite file is created in WAL mode with the schema version recorded", "[user_store]") {
    REQUIRE(gatehouse::user_store_schema_version() == 1);
    REQUIRE(gatehouse::detail::sqlite_migrations().size() == 1);

    temp_dir dir;
    const std::string path = dir.file("users.db");
    const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    auto store = open("sqlite:" + path);
    CHECK(fs::exists(path));

    const auto steps = history(*store);
    REQUIRE(steps.size() == 1);
    CHECK(steps[0].version == 1);
    CHECK(steps[0].applied_at_ms >= before);
    CHECK(steps[0].applied_at_ms < before + 60'000);

    create(*store, "alice", "alice@example.com");
    // A write-ahead log exists next to the database while it is open in WAL mode.
    CHECK(fs::exists(path + "-wal"));
}

TEST_CASE("sqlite::memory: stores are private and migrated", "[user_store]") {
    auto a = open("sqlite::memory:");
    auto b = open("SQLite::memory:");  // the scheme is case-insensitive
    const auto steps = history(*a);
    REQUIRE(steps.size() == 1);
    CHECK(steps[0].version == 1);

    const user_record alice = create(*a, "alice", "alice@example.com");
    user_record found;
    CHECK_FALSE(a->find_user(alice.player_id, found));
    CHECK(b->find_user(alice.player_id, found) == errc::user_not_found);
    create(*b, "alice", "alice@example.com");  // no clash: another database
}

TEST_CASE("reopening keeps the data and does not migrate again", "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    const std::string& url = db.url();
    user_record alice;
    std::string token;
    std::vector<sqlite_schema_step> first;
    {
        auto store = open(url);
        first = history(*store);
        alice = create(*store, "Alice", "alice@example.com");
        REQUIRE_FALSE(store->update_settings(alice.player_id, "Queen A", R"({"volume":3})"));
        token = login(*store, alice.player_id);
    }
    auto store = open(url);
    const auto again = history(*store);
    REQUIRE(again.size() == 1);
    CHECK(again[0].version == first[0].version);
    CHECK(again[0].applied_at_ms == first[0].applied_at_ms);

    user_record found;
    REQUIRE_FALSE(store->find_user_by_login("alice", found));
    CHECK(found.player_id == alice.player_id);
    CHECK(found.username == "Alice");
    CHECK(found.display_name == "Queen A");
    CHECK(found.preferences == R"({"volume":3})");
    CHECK(found.created_at_ms == alice.created_at_ms);
    CHECK_FALSE(rotate(*store, token));
}

TEST_CASE("a database from a newer schema is refused", "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    std::vector<sqlite_schema_step> v1;
    {
        auto store = db.open();
        v1 = history(*store);
        create(*store, "alice", "alice@example.com");
    }

    // A later build: its v2 is one more step at the end of the list.
    auto future = db.migrations();
    future.emplace_back("CREATE TABLE achievements (player_id TEXT NOT NULL, name TEXT NOT NULL)");
    {
        std::unique_ptr<user_store> store;
        std::string problem;
        REQUIRE_FALSE(db.open_with(future, store, problem));
        const auto steps = history(*store);
        REQUIRE(steps.size() == 2);
        CHECK(steps[0].version == 1);
        CHECK(steps[0].applied_at_ms == v1[0].applied_at_ms);  // v1 not run again
        CHECK(steps[1].version == 2);
        user_record found;
        CHECK_FALSE(store->find_user_by_login("alice", found));  // data carried over
    }

    // This build, on the database the later one wrote.
    std::unique_ptr<user_store> store;
    std::string problem;
    CHECK(open_user_store(db.url(), store, into(problem)) == errc::store_unavailable);
    CHECK(store == nullptr);
    INFO(problem);
    CHECK(problem.find("schema version 2") != std::string::npos);
    CHECK(problem.find("newer") != std::string::npos);

    // Refusing changed nothing.
    REQUIRE_FALSE(db.open_with(future, store, problem));
    CHECK(history(*store).size() == 2);
}

TEST_CASE("a failed migration step leaves the database at the previous version",
          "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    db.open().reset();

    // The first statement of this v2 succeeds and the second fails: both must be undone.
    auto broken = db.migrations();
    broken.emplace_back("CREATE TABLE v2_table (x INTEGER); CREATE TABLE users (x INTEGER);");
    std::unique_ptr<user_store> store;
    std::string problem;
    CHECK(db.open_with(broken, store, problem) == errc::store_unavailable);
    CHECK(store == nullptr);
    INFO(problem);
    CHECK(problem.find("migration to schema version 2") != std::string::npos);

    auto store_v1 = db.open();
    CHECK(history(*store_v1).size() == 1);
    store_v1.reset();

    // Had v2_table survived, this would fail.
    auto fixed = db.migrations();
    fixed.emplace_back("CREATE TABLE v2_table (x INTEGER)");
    REQUIRE_FALSE(db.open_with(fixed, store, problem));
    CHECK(history(*store).size() == 2);
}

TEST_CASE("files that cannot be databases are store_unavailable", "[user_store]") {
    temp_dir dir;
    std::unique_ptr<user_store> store;

    SECTION("not a database") {
        const std::string path = dir.file("garbage.db");
        {
            std::ofstream f(path, std::ios::binary);
            for (int i = 0; i < 64; ++i) f << "this is not an SQLite database, just text. ";
        }
        std::string problem;
        CHECK(open_user_store("sqlite:" + path, store, into(problem)) == errc::store_unavailable);
        CHECK_FALSE(problem.empty());
    }
    SECTION("in a directory that does not exist") {
        std::string problem;
        CHECK(open_user_store("sqlite:" + dir.file("missing/users.db"), store, into(problem)) ==
              errc::store_unavailable);
        CHECK(problem.find("cannot open") != std::string::npos);
    }
    SECTION("a directory") {
        std::string problem;
        CHECK(open_user_store("sqlite:" + dir.file(""), store, into(problem)) ==
              errc::store_unavailable);
        CHECK_FALSE(problem.empty());
    }
    CHECK(store == nullptr);
}

TEST_CASE("store URLs other than sqlite and postgresql are bad configuration", "[user_store]") {
    const std::vector<std::string> urls = {
        "mysql://gatehouse:s3cret-pw@db.example.com/gatehouse",
        "",
        "users.db",           // no scheme
        ":memory:",           // no scheme either
        "sqlite",             // no colon
        "sqlite:",            // no path
        "sqlite://users.db",  // not the documented spelling
        "sqlite:///var/lib/users.db",
        "s3cret pw:x",  // not a scheme
        // libpq cannot parse these, and they must not be echoed.
        "postgresql://gatehouse:s3cret-pw@[::1/gatehouse",
        "postgresql://gatehouse:s3cret-pw@db.example.com/gatehouse?s3cret-param=1",
        "postgres://gatehouse:s3cret-pw@db.example.com:5432/gatehouse?pool_size=0",
        "postgresql://gatehouse:s3cret-pw@db.example.com/gatehouse?pool_size=65",
        "postgresql://gatehouse:s3cret-pw@db.example.com/gatehouse?pool_size=x",
    };
    for (const auto& url : urls) {
        INFO(url);
        std::unique_ptr<user_store> store;
        std::string problem;
        try {
            static_cast<void>(open_user_store(url, store, into(problem)));
            FAIL("no exception");
        } catch (const std::invalid_argument& e) {
            problem = e.what();
        }
        CHECK(store == nullptr);
        CHECK_FALSE(problem.empty());
        INFO(problem);
        CHECK(problem.find("s3cret") == std::string::npos);  // never echoes credentials
        // The start-up check refuses it the same way, without opening anything.
        try {
            gatehouse::check_user_store_url(url);
            FAIL("check_user_store_url accepted it");
        } catch (const std::invalid_argument& e) {
            CHECK(std::string(e.what()) == problem);
        }
    }
    for (const char* good : {"sqlite:users.db", "SQLite::memory:", "sqlite:/nonexistent/dir/x.db",
                             "postgresql://gh:pw@db.example.com:5433/users?pool_size=8",
                             "postgres://db.example.com/users"}) {
        INFO(good);
        CHECK_NOTHROW(gatehouse::check_user_store_url(good));
    }
}

TEST_CASE("postgresql URLs are shown without their password", "[user_store]") {
    using gatehouse::detail::redacted_postgres_url;
    CHECK(redacted_postgres_url("postgresql://gh:s3cret@db.example.com:5433/users") ==
          "postgresql://gh@db.example.com:5433/users");
    CHECK(redacted_postgres_url(
              "postgresql://db.example.com/users?password=s3cret&sslmode=require") ==
          "postgresql://db.example.com/users");
    CHECK(redacted_postgres_url("postgresql://gh:s3cret@db.example.com/users?pool_size=3") ==
          "postgresql://gh@db.example.com/users");
    CHECK(redacted_postgres_url("postgresql://gh:s3cret@[::1/x") ==
          "postgresql://(unparsable URL)");
}

TEST_CASE("create_user fills in the player id and creation time", "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    user_record alice = make_user("alice", "alice@example.com");
    alice.display_name = "Alice A.";
    alice.preferences = R"({"lang":"en"})";
    REQUIRE_FALSE(store->create_user(alice));
    REQUIRE(alice.player_id.size() == 26);
    CHECK(alice.player_id.rfind("p_", 0) == 0);
    CHECK(alice.player_id.find_first_not_of("0123456789abcdef", 2) == std::string::npos);
    CHECK(alice.created_at_ms >= before);
    CHECK(alice.created_at_ms < before + 60'000);

    user_record found;
    REQUIRE_FALSE(store->find_user(alice.player_id, found));
    CHECK(found.player_id == alice.player_id);
    CHECK(found.username == "alice");
    CHECK(found.email == "alice@example.com");
    CHECK(found.password_hash == alice.password_hash);
    CHECK(found.display_name == "Alice A.");
    CHECK(found.preferences == R"({"lang":"en"})");
    CHECK(found.created_at_ms == alice.created_at_ms);

    // Caller-chosen values are kept.
    user_record bob = make_user("bob", "bob@example.com");
    bob.player_id = "player-bob";
    bob.created_at_ms = 1234;
    REQUIRE_FALSE(store->create_user(bob));
    CHECK(bob.player_id == "player-bob");
    REQUIRE_FALSE(store->find_user("player-bob", found));
    CHECK(found.created_at_ms == 1234);
    CHECK(found.display_name.empty());
    CHECK(found.preferences == "{}");

    // A caller-chosen id already in use is the caller's mistake.
    user_record clash = make_user("carol", "carol@example.com");
    clash.player_id = "player-bob";
    CHECK(store->create_user(clash) == std::errc::invalid_argument);
    CHECK(store->find_user_by_login("carol", found) == errc::user_not_found);

    std::set<std::string> ids;
    for (int i = 0; i < 50; ++i) {
        ids.insert(create(*store, "user" + std::to_string(i), std::to_string(i) + "@example.com")
                       .player_id);
    }
    CHECK(ids.size() == 50);
}

TEST_CASE("usernames and emails are unique case-insensitively (ASCII)",
          "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    const user_record alice = create(*store, "Alice", "Alice@Example.com");

    user_record u = make_user("ALICE", "other@example.com");
    CHECK(store->create_user(u) == errc::username_taken);
    CHECK(u.player_id.empty());  // nothing written back on failure
    CHECK(u.created_at_ms == 0);

    u = make_user("bob", "alice@EXAMPLE.COM");
    CHECK(store->create_user(u) == errc::email_taken);

    // Both taken (by the same or by different accounts): the username is reported.
    u = make_user("alice", "ALICE@example.com");
    CHECK(store->create_user(u) == errc::username_taken);
    const user_record bob = create(*store, "bob", "bob@example.com");
    u = make_user("BOB", "alice@example.com");
    CHECK(store->create_user(u) == errc::username_taken);

    // ASCII folding only, as docs/protocol.md says: these are different names.
    create(*store, "\xc3\x89mile", "emile1@example.com");  // "Émile"
    create(*store, "\xc3\xa9mile", "emile2@example.com");  // "émile"

    // Login by username or email, in any ASCII case; the stored case is kept.
    for (const char* name : {"alice", "ALICE", "aLiCe", "alice@example.com", "ALICE@EXAMPLE.COM"}) {
        INFO(name);
        user_record found;
        REQUIRE_FALSE(store->find_user_by_login(name, found));
        CHECK(found.player_id == alice.player_id);
        CHECK(found.username == "Alice");
        CHECK(found.email == "Alice@Example.com");
    }
    user_record found;
    REQUIRE_FALSE(store->find_user_by_login("Bob@Example.com", found));
    CHECK(found.player_id == bob.player_id);
}

TEST_CASE("find_user_by_login: misses, and a username match before an email match",
          "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    // The store does not validate names, so a username can look like another's email.
    const user_record a = create(*store, "shared@example.com", "a@example.com");
    const user_record b = create(*store, "b", "shared@example.com");

    user_record found;
    REQUIRE_FALSE(store->find_user_by_login("SHARED@example.com", found));
    CHECK(found.player_id == a.player_id);
    REQUIRE_FALSE(store->find_user_by_login("b", found));
    CHECK(found.player_id == b.player_id);

    user_record untouched;
    untouched.player_id = "untouched";
    CHECK(store->find_user_by_login("nobody", untouched) == errc::user_not_found);
    CHECK(store->find_user_by_login("", untouched) == errc::user_not_found);
    CHECK(store->find_user_by_login("shared", untouched) == errc::user_not_found);
    CHECK(store->find_user("p_000000000000000000000000", untouched) == errc::user_not_found);
    CHECK(untouched.player_id == "untouched");
}

TEST_CASE("a real Argon2id hash survives the round trip and logs in by email",
          "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    user_record u = make_user("carol", "Carol@Example.org");
    REQUIRE_FALSE(gatehouse::hash_password("hunter2hunter2", u.password_hash, {1, 8192}));
    REQUIRE_FALSE(store->create_user(u));

    user_record found;
    REQUIRE_FALSE(store->find_user_by_login("carol@example.org", found));
    CHECK(gatehouse::verify_password(found.password_hash, "hunter2hunter2"));
    CHECK_FALSE(gatehouse::verify_password(found.password_hash, "hunter3hunter3"));
}

TEST_CASE("update_settings replaces display name and preferences", "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    const user_record alice = create(*store, "alice", "alice@example.com");

    REQUIRE_FALSE(store->update_settings(alice.player_id, "Al", R"({"theme":"dark"})"));
    user_record found;
    REQUIRE_FALSE(store->find_user(alice.player_id, found));
    CHECK(found.display_name == "Al");
    CHECK(found.preferences == R"({"theme":"dark"})");
    CHECK(found.password_hash == alice.password_hash);

    // Empty stays empty (not NULL), and the same values again are still a match.
    REQUIRE_FALSE(store->update_settings(alice.player_id, "", "{}"));
    REQUIRE_FALSE(store->update_settings(alice.player_id, "", "{}"));
    REQUIRE_FALSE(store->find_user(alice.player_id, found));
    CHECK(found.display_name.empty());
    CHECK(found.preferences == "{}");

    // Quotes and SQL-looking text are data.
    const std::string odd = "Robert'); DROP TABLE users;--";
    REQUIRE_FALSE(store->update_settings(alice.player_id, odd, R"({"a":"'\""})"));
    REQUIRE_FALSE(store->find_user(alice.player_id, found));
    CHECK(found.display_name == odd);
    CHECK(found.preferences == R"({"a":"'\""})");

    CHECK(store->update_settings("nobody", "x", "{}") == errc::user_not_found);
}

TEST_CASE("update_password replaces the hash and revokes every refresh token",
          "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    const user_record alice = create(*store, "alice", "alice@example.com");
    const user_record bob = create(*store, "bob", "bob@example.com");
    const std::string phone = login(*store, alice.player_id);
    const std::string laptop = login(*store, alice.player_id);
    const std::string bobs = login(*store, bob.player_id);

    REQUIRE_FALSE(store->update_password(alice.player_id, "$argon2id$new"));
    user_record found;
    REQUIRE_FALSE(store->find_user(alice.player_id, found));
    CHECK(found.password_hash == "$argon2id$new");
    CHECK(rotate(*store, phone) == errc::invalid_refresh_token);
    CHECK(rotate(*store, laptop) == errc::invalid_refresh_token);
    CHECK_FALSE(rotate(*store, bobs));  // other players keep theirs

    // A login after the change works as usual.
    CHECK_FALSE(rotate(*store, login(*store, alice.player_id)));

    CHECK(store->update_password("nobody", "$argon2id$x") == errc::user_not_found);
}

TEST_CASE("rotation keeps the family and the player", "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    const user_record alice = create(*store, "alice", "alice@example.com");

    refresh_token_record first;
    first.token_hash = gatehouse::hash_refresh_token("first");
    first.family_id = "family-1";
    first.player_id = alice.player_id;
    first.expires_at_ms = now + hour;
    REQUIRE_FALSE(store->add_refresh_token(first));

    refresh_token_record next;
    next.token_hash = gatehouse::hash_refresh_token("second");
    next.expires_at_ms = now + 2 * hour;
    next.family_id = "ignored";
    next.player_id = "ignored";
    REQUIRE_FALSE(store->rotate_refresh_token(first.token_hash, now, next));
    CHECK(next.family_id == "family-1");
    CHECK(next.player_id == alice.player_id);

    // The new token is live until its own expiry, the old one is spent.
    std::string third;
    REQUIRE_FALSE(rotate(*store, next.token_hash, third, now + hour + 1));
    CHECK_FALSE(rotate(*store, third, now + hour + 2));

    CHECK(rotate(*store, gatehouse::hash_refresh_token("unknown")) == errc::invalid_refresh_token);
    CHECK(rotate(*store, "") == errc::invalid_refresh_token);

    // A failed rotation writes nothing back.
    refresh_token_record untouched;
    untouched.token_hash = gatehouse::hash_refresh_token("x");
    untouched.family_id = "f";
    untouched.player_id = "p";
    CHECK(store->rotate_refresh_token("nope", now, untouched) == errc::invalid_refresh_token);
    CHECK(untouched.family_id == "f");
    CHECK(untouched.player_id == "p");
}

TEST_CASE("presenting a rotated token revokes the whole family", "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    const user_record alice = create(*store, "alice", "alice@example.com");
    const std::string t1 = login(*store, alice.player_id);
    const std::string other_session = login(*store, alice.player_id);

    std::string t2;
    REQUIRE_FALSE(rotate(*store, t1, t2));
    std::string t3;
    REQUIRE_FALSE(rotate(*store, t2, t3));

    refresh_token_record replay;
    replay.token_hash = gatehouse::hash_refresh_token("replay");
    replay.expires_at_ms = now + hour;
    CHECK(store->rotate_refresh_token(t1, now, replay) == errc::refresh_token_reused);
    // Named for the security log.
    CHECK(replay.player_id == alice.player_id);
    CHECK_FALSE(replay.family_id.empty());
    // The family is dead, the newest token included; replaying again is just invalid.
    CHECK(rotate(*store, t3) == errc::invalid_refresh_token);
    CHECK(rotate(*store, t2) == errc::invalid_refresh_token);
    CHECK(rotate(*store, t1) == errc::invalid_refresh_token);
    CHECK(rotate(*store, replay.token_hash) == errc::invalid_refresh_token);  // never stored
    CHECK(store->revoke_refresh_family(t3, now) == errc::invalid_refresh_token);

    // Another login of the same player is another family.
    CHECK_FALSE(rotate(*store, other_session));
}

TEST_CASE("a rotated token replayed after its expiry still revokes the family",
          "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    const user_record alice = create(*store, "alice", "alice@example.com");
    const std::string t1 = login(*store, alice.player_id, now + hour);
    std::string t2;
    // t2 expires an hour after this rotation, so it is live when t1 is replayed below.
    REQUIRE_FALSE(rotate(*store, t1, t2, now + hour - 10));
    CHECK(rotate(*store, t1, now + hour + 5) == errc::refresh_token_reused);
    CHECK(rotate(*store, t2, now + hour + 6) == errc::invalid_refresh_token);
}

TEST_CASE("refresh tokens expire", "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    const user_record alice = create(*store, "alice", "alice@example.com");

    const std::string a = login(*store, alice.player_id, now + 1000);
    CHECK(rotate(*store, a, now + 1000) == errc::invalid_refresh_token);  // at expiry: dead
    CHECK(rotate(*store, a, now + 5000) == errc::invalid_refresh_token);
    CHECK(store->revoke_refresh_family(a, now + 1000) == errc::invalid_refresh_token);

    const std::string b = login(*store, alice.player_id, now + 1000);
    CHECK_FALSE(rotate(*store, b, now + 999));  // just before
}

TEST_CASE("logout revokes the family of a live token", "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    const user_record alice = create(*store, "alice", "alice@example.com");
    const std::string t1 = login(*store, alice.player_id);
    const std::string elsewhere = login(*store, alice.player_id);
    std::string t2;
    REQUIRE_FALSE(rotate(*store, t1, t2));

    // A spent token does not log out (and, unlike a refresh, does not end the family).
    CHECK(store->revoke_refresh_family(t1, now) == errc::invalid_refresh_token);

    REQUIRE_FALSE(store->revoke_refresh_family(t2, now));
    CHECK(rotate(*store, t2) == errc::invalid_refresh_token);
    CHECK(store->revoke_refresh_family(t2, now) == errc::invalid_refresh_token);
    CHECK(store->revoke_refresh_family(gatehouse::hash_refresh_token("unknown"), now) ==
          errc::invalid_refresh_token);

    CHECK_FALSE(rotate(*store, elsewhere));
}

TEST_CASE("revoke_player_tokens ends every session of one player", "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    const user_record alice = create(*store, "alice", "alice@example.com");
    const user_record bob = create(*store, "bob", "bob@example.com");
    const std::string a1 = login(*store, alice.player_id);
    const std::string a2 = login(*store, alice.player_id);
    const std::string b1 = login(*store, bob.player_id);

    REQUIRE_FALSE(store->revoke_player_tokens(alice.player_id));
    CHECK(rotate(*store, a1) == errc::invalid_refresh_token);
    CHECK(rotate(*store, a2) == errc::invalid_refresh_token);
    CHECK_FALSE(rotate(*store, b1));
    CHECK_FALSE(store->revoke_player_tokens("nobody"));
}

TEST_CASE("add_refresh_token needs an existing player and a new hash", "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    const user_record alice = create(*store, "alice", "alice@example.com");

    refresh_token_record t;
    t.token_hash = gatehouse::hash_refresh_token("t");
    t.family_id = "f";
    t.player_id = "nobody";
    t.expires_at_ms = now + hour;
    CHECK(store->add_refresh_token(t) == errc::user_not_found);

    t.player_id = alice.player_id;
    REQUIRE_FALSE(store->add_refresh_token(t));
    CHECK(store->add_refresh_token(t) == std::errc::invalid_argument);

    // A rotation whose new hash is taken fails as a whole: the old token stays live.
    refresh_token_record other = t;
    other.token_hash = gatehouse::hash_refresh_token("other");
    other.family_id = "g";
    REQUIRE_FALSE(store->add_refresh_token(other));
    refresh_token_record next;
    next.token_hash = t.token_hash;
    next.expires_at_ms = now + hour;
    CHECK(store->rotate_refresh_token(other.token_hash, now, next) == std::errc::invalid_argument);
    CHECK_FALSE(rotate(*store, other.token_hash));
}

TEST_CASE("many threads create accounts at once", "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    const std::string& url = db.url();
    auto store = open(url);
    constexpr int threads = 8;
    constexpr int per_thread = 20;

    std::promise<void> go;
    const std::shared_future<void> start = go.get_future().share();
    std::vector<std::vector<std::string>> ids(threads);
    std::vector<int> failures(threads, 0);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            start.wait();
            for (int i = 0; i < per_thread; ++i) {
                const std::string name = "u" + std::to_string(t) + "_" + std::to_string(i);
                user_record u = make_user(name, name + "@example.com");
                if (store->create_user(u)) {
                    ++failures[static_cast<std::size_t>(t)];
                } else {
                    ids[static_cast<std::size_t>(t)].push_back(u.player_id);
                }
            }
        });
    }
    go.set_value();
    for (auto& th : pool) th.join();

    std::set<std::string> all;
    for (int t = 0; t < threads; ++t) {
        CHECK(failures[static_cast<std::size_t>(t)] == 0);
        all.insert(ids[static_cast<std::size_t>(t)].begin(),
                   ids[static_cast<std::size_t>(t)].end());
    }
    CHECK(all.size() == static_cast<std::size_t>(threads * per_thread));
    user_record found;
    REQUIRE_FALSE(store->find_user_by_login("U7_19@EXAMPLE.COM", found));
    CHECK(found.username == "u7_19");
}

TEST_CASE("racing registrations of one name: exactly one wins", "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    const std::string& url = db.url();
    // Two stores are two connections, as two gateway processes on one file would be.
    auto first = open(url);
    auto second = open(url);
    constexpr int threads = 8;

    for (const bool same_email : {false, true}) {
        INFO("same email: " << same_email);
        std::promise<void> go;
        const std::shared_future<void> start = go.get_future().share();
        std::vector<std::error_code> results(threads);
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) {
            pool.emplace_back([&, t] {
                user_store& s = t % 2 == 0 ? *first : *second;
                // Different case each time: the race is decided case-insensitively too.
                user_record u = same_email
                                    ? make_user("racer_b" + std::to_string(t), "RACE@example.com")
                                    : make_user(t % 2 == 0 ? "RACER" : "racer",
                                                "racer" + std::to_string(t) + "@example.com");
                start.wait();
                results[static_cast<std::size_t>(t)] = s.create_user(u);
            });
        }
        go.set_value();
        for (auto& th : pool) th.join();

        int won = 0;
        for (const auto& ec : results) {
            if (!ec) {
                ++won;
            } else {
                CHECK(ec == (same_email ? errc::email_taken : errc::username_taken));
            }
        }
        CHECK(won == 1);
    }
}

TEST_CASE("racing rotations of one token: exactly one wins, the family ends",
          "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    const std::string& url = db.url();
    auto first = open(url);
    auto second = open(url);
    const user_record alice = create(*first, "alice", "alice@example.com");
    constexpr int threads = 8;

    for (int round = 0; round < 3; ++round) {
        const std::string token = login(*first, alice.player_id);
        std::promise<void> go;
        const std::shared_future<void> start = go.get_future().share();
        std::vector<std::error_code> results(threads);
        std::vector<std::string> next(threads);
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) {
            pool.emplace_back([&, t] {
                // Round 0 on one connection, then across both.
                user_store& s = (round == 0 || t % 2 == 0) ? *first : *second;
                start.wait();
                const auto i = static_cast<std::size_t>(t);
                results[i] = rotate(s, token, next[i]);
            });
        }
        go.set_value();
        for (auto& th : pool) th.join();

        int won = 0;
        int reused = 0;
        std::string winner;
        for (int t = 0; t < threads; ++t) {
            const auto& ec = results[static_cast<std::size_t>(t)];
            if (!ec) {
                ++won;
                winner = next[static_cast<std::size_t>(t)];
            } else if (ec == errc::refresh_token_reused) {
                ++reused;
            } else {
                CHECK(ec == errc::invalid_refresh_token);
            }
        }
        CHECK(won == 1);
        CHECK(reused >= 1);  // the first loser sees a used token
        // The client raced itself: its session is over, the winner's new token included.
        CHECK(rotate(*first, winner) == errc::invalid_refresh_token);
    }
}

TEST_CASE("pruning deletes the tokens of families that can never be live again",
          "[user_store][postgresql]") {
    const backing db(EACH_STORE);
    INFO(db.kind());
    auto store = db.open();
    const user_record alice = create(*store, "alice", "alice@example.com");
    const std::string expired = login(*store, alice.player_id, now + 1000);
    const std::string live = login(*store, alice.player_id, now + hour);
    const std::string rotated = login(*store, alice.player_id, now + 1000);
    std::string rotated_next;  // expires at now + 500 + hour: keeps `rotated` (used) alive
    REQUIRE_FALSE(rotate(*store, rotated, rotated_next, now + 500));
    const std::string logged_out = login(*store, alice.player_id, now + hour);
    REQUIRE_FALSE(store->revoke_refresh_family(logged_out, now));

    std::size_t removed = 99;
    REQUIRE_FALSE(store->prune_refresh_tokens(now + 2000, removed));
    CHECK(removed == 2);  // `expired` and `logged_out`
    CHECK(rotate(*store, expired, now + 500) == errc::invalid_refresh_token);  // gone

    // The used token of a live family is still there: replaying it still ends the family.
    CHECK(rotate(*store, rotated, now + 2000) == errc::refresh_token_reused);
    CHECK(rotate(*store, rotated_next, now + 2000) == errc::invalid_refresh_token);
    REQUIRE_FALSE(store->prune_refresh_tokens(now + 2000, removed));
    CHECK(removed == 2);  // that family, revoked now
    REQUIRE_FALSE(store->prune_refresh_tokens(now + 2000, removed));
    CHECK(removed == 0);

    CHECK_FALSE(rotate(*store, live, now + 2000));
}

TEST_CASE("postgresql: instances starting at once on a new database migrate it once",
          "[user_store][postgresql]") {
    const gatehouse_test::postgres_database db;
    constexpr int instances = 6;
    std::promise<void> go;
    const std::shared_future<void> start = go.get_future().share();
    std::vector<std::unique_ptr<user_store>> stores(instances);
    std::vector<std::string> problems(instances);
    std::vector<std::error_code> results(instances);
    std::vector<std::thread> pool;
    for (int i = 0; i < instances; ++i) {
        pool.emplace_back([&, i] {
            const auto n = static_cast<std::size_t>(i);
            start.wait();
            results[n] = open_user_store(db.url(), stores[n], into(problems[n]));
        });
    }
    go.set_value();
    for (auto& t : pool) t.join();
    for (int i = 0; i < instances; ++i) {
        const auto n = static_cast<std::size_t>(i);
        INFO(problems[n]);
        REQUIRE_FALSE(results[n]);
    }
    CHECK(history(*stores[0]).size() == 1);
    CHECK(db.admin("SELECT count(*) FROM schema_migrations") == "1");
    // They all share it.
    const user_record alice = create(*stores[1], "alice", "alice@example.com");
    user_record found;
    REQUIRE_FALSE(stores[4]->find_user_by_login("ALICE", found));
    CHECK(found.player_id == alice.player_id);
    // The uniqueness is the index's, not the locale's: lower() under "C" folds ASCII only.
    CHECK(db.admin("SELECT indexdef FROM pg_indexes WHERE indexname = 'users_username'")
              .find("COLLATE \"C\"") != std::string::npos);
}

TEST_CASE("postgresql: an unreachable database is store_unavailable, soon, without secrets",
          "[user_store][postgresql]") {
    const auto& cluster = gatehouse_test::postgres_cluster::shared();
    const gatehouse_test::postgres_database db;

    // A TCP port nobody listens on, and one whose listener never answers (accepted by the
    // kernel, never by a program: the startup packet gets no reply).
    const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(silent >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(silent, 16) == 0);
    REQUIRE(::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    const int silent_port = ntohs(addr.sin_port);
    int closed_port = 0;
    {
        const int s = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t l = sizeof a;
        REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &l) == 0);
        closed_port = ntohs(a.sin_port);
        ::close(s);
    }

    struct attempt {
        std::string url;
        std::string secret;
        int at_most_s;
    };
    const std::vector<attempt> attempts = {
        {"postgresql://gatehouse:s3cret-pw@127.0.0.1:" + std::to_string(closed_port) + "/x",
         "s3cret-pw", 2},
        {"postgresql://gatehouse:s3cret-pw@127.0.0.1:" + std::to_string(silent_port) +
             "/x?connect_timeout=2",
         "s3cret-pw", 5},
        {"postgresql://gatehouse:wrong-s3cret@127.0.0.1:" + std::to_string(cluster.port()) + "/" +
             db.name(),
         "wrong-s3cret", 3},
        {"postgresql://gatehouse@127.0.0.1:" + std::to_string(cluster.port()) + "/" + db.name() +
             "?password=" + cluster.password() + "x",
         cluster.password() + "x", 3},
        {cluster.url("no_such_database"), cluster.password(), 3},
    };
    for (const auto& a : attempts) {
        INFO(a.url);
        std::unique_ptr<user_store> store;
        std::string problem;
        const auto t0 = std::chrono::steady_clock::now();
        CHECK(open_user_store(a.url, store, into(problem)) == errc::store_unavailable);
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(a.at_most_s));
        CHECK(store == nullptr);
        INFO(problem);
        CHECK(problem.find("cannot connect") != std::string::npos);
        CHECK(problem.find(a.secret) == std::string::npos);
    }
    ::close(silent);
}

TEST_CASE("postgresql: a server that stops answering gives errors in time, then recovers",
          "[user_store][postgresql]") {
    // A cluster of its own: pausing the shared one would stall other tests.
    const auto cluster = gatehouse_test::postgres_cluster::start_private();
    const gatehouse_test::postgres_database db(*cluster);
    gatehouse::detail::postgres_options options;
    options.query_timeout = std::chrono::milliseconds(1000);
    options.acquire_timeout = std::chrono::milliseconds(1000);
    options.connect_timeout_s = 2;
    std::unique_ptr<user_store> store;
    std::string problem;
    REQUIRE_FALSE(gatehouse::detail::open_postgres_user_store(
        db.url(), gatehouse::detail::postgres_migrations(), options, store, into(problem)));
    const user_record alice = create(*store, "alice", "alice@example.com");

    cluster->pause();
    const auto t0 = std::chrono::steady_clock::now();
    user_record found;
    CHECK(store->find_user(alice.player_id, found) == errc::store_unavailable);
    // The dead connection is dropped; a new one cannot be made either (connect_timeout).
    CHECK(store->find_user(alice.player_id, found) == errc::store_unavailable);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(6));
    cluster->resume();

    REQUIRE_FALSE(store->find_user(alice.player_id, found));
    CHECK(found.username == "alice");
    CHECK_FALSE(rotate(*store, login(*store, alice.player_id)));
}

TEST_CASE("postgresql: text it cannot hold names nothing and is refused as data",
          "[user_store][postgresql]") {
    const backing db("postgresql");
    auto store = db.open();
    const user_record alice = create(*store, "alice", "alice@example.com");
    const std::string nul("ali\0ce", 6);
    const std::string bad_utf8 =
        "ali\xff"
        "ce";
    user_record found;
    for (const auto& odd : {nul, bad_utf8}) {
        CHECK(store->find_user_by_login(odd, found) == errc::user_not_found);
        CHECK(store->find_user(odd, found) == errc::user_not_found);
        CHECK(store->update_settings(odd, "x", "{}") == errc::user_not_found);
        CHECK(store->update_settings(alice.player_id, odd, "{}") == std::errc::invalid_argument);
        CHECK(rotate(*store, odd) == errc::invalid_refresh_token);
        CHECK(store->revoke_refresh_family(odd, now) == errc::invalid_refresh_token);
        CHECK_FALSE(store->revoke_player_tokens(odd));
        user_record u = make_user(odd, "odd@example.com");
        CHECK(store->create_user(u) == std::errc::invalid_argument);
    }
}

TEST_CASE("postgresql: a pool of one connection serves many threads", "[user_store][postgresql]") {
    const gatehouse_test::postgres_database db;
    auto store = open(db.url("?pool_size=1"));
    constexpr int threads = 6;
    std::vector<int> failures(threads, 0);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            for (int i = 0; i < 10; ++i) {
                const std::string name = "u" + std::to_string(t) + "_" + std::to_string(i);
                user_record u = make_user(name, name + "@example.com");
                user_record found;
                if (store->create_user(u) || store->find_user(u.player_id, found)) {
                    ++failures[static_cast<std::size_t>(t)];
                }
            }
        });
    }
    for (auto& th : pool) th.join();
    for (const int f : failures) CHECK(f == 0);
    CHECK(db.admin("SELECT count(*) FROM pg_stat_activity WHERE datname = '" + db.name() +
                   "' AND application_name = 'gatehouse'") == "1");
}
