#pragma once

// A real PostgreSQL for the unit tests, shared by every test of a process: the cluster the
// CTest fixture started for the whole run (GATEHOUSE_TEST_POSTGRES_DIR/cluster.json, see
// tests/CMakeLists.txt) when it answers, else one started at first use and stopped at exit.
// Starting, stopping and pausing are tests/server/postgres_fixture.py's (initdb + postgres as
// the `postgres` user in a temporary directory, on a free 127.0.0.1 port, stopped by PID), so
// the unit and server suites run PostgreSQL exactly the same way. Each test gets a database
// of its own (`database`), dropped when it goes.

#include <libpq-fe.h>
#include <stdlib.h>  // mkdtemp, getenv
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef GATEHOUSE_TEST_POSTGRES_SCRIPT
#error "GATEHOUSE_TEST_POSTGRES_SCRIPT must name tests/server/postgres_fixture.py"
#endif

namespace gatehouse_test {

/// One PostgreSQL cluster, described by postgres_fixture.py's cluster.json.
class postgres_cluster {
public:
    /// The process's cluster (see the file comment). Throws when none can be started.
    static postgres_cluster& shared() {
        static postgres_cluster cluster = make_shared_cluster();
        return cluster;
    }

    /// A cluster of its own in a new temporary directory (for tests that stop or pause it).
    static std::unique_ptr<postgres_cluster> start_private() {
        auto c = std::make_unique<postgres_cluster>();
        c->dir_ = make_temp_dir();
        c->owned_ = true;
        c->run_script("start");
        c->read_description();
        return c;
    }

    postgres_cluster() = default;
    ~postgres_cluster() {
        if (owned_) {
            try {
                run_script("stop");
            } catch (...) {
            }
            std::error_code ignored;
            std::filesystem::remove_all(dir_, ignored);
        }
    }
    postgres_cluster(postgres_cluster&& other) noexcept
        : dir_(std::move(other.dir_)),
          socket_dir_(std::move(other.socket_dir_)),
          password_(std::move(other.password_)),
          port_(other.port_),
          owned_(std::exchange(other.owned_, false)) {}
    postgres_cluster(const postgres_cluster&) = delete;
    postgres_cluster& operator=(const postgres_cluster&) = delete;
    postgres_cluster& operator=(postgres_cluster&&) = delete;

    std::uint16_t port() const { return port_; }
    /// The password of the role `gatehouse` (scram-sha-256 over TCP).
    const std::string& password() const { return password_; }

    /// The `--db` URL of `database` for the role `gatehouse`, over TCP; `query` is appended
    /// as is (e.g. "?pool_size=2").
    std::string url(const std::string& database, const std::string& query = "") const {
        return "postgresql://gatehouse:" + password_ + "@127.0.0.1:" + std::to_string(port_) + "/" +
               database + query;
    }

    /// Runs `sql` as the superuser over the unix socket; throws on failure. Returns the first
    /// column of the first row, or "" when there is none.
    std::string admin(const std::string& sql, const std::string& database = "postgres") const {
        const std::string conninfo = "host=" + socket_dir_ + " port=" + std::to_string(port_) +
                                     " user=postgres dbname=" + database + " connect_timeout=5";
        PGconn* c = PQconnectdb(conninfo.c_str());
        if (PQstatus(c) != CONNECTION_OK) {
            const std::string why = PQerrorMessage(c);
            PQfinish(c);
            throw std::runtime_error("cannot connect as postgres: " + why);
        }
        PGresult* r = PQexec(c, sql.c_str());
        const auto status = PQresultStatus(r);
        std::string out;
        if (status == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
        const std::string why = PQresultErrorMessage(r);
        PQclear(r);
        PQfinish(c);
        if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
            throw std::runtime_error(sql + ": " + why);
        }
        return out;
    }

    /// SIGSTOP / SIGCONT to the postmaster and its backends: every connection stays open and
    /// nothing answers, as with a hung server.
    void pause() const { run_script("pause"); }
    void resume() const { run_script("resume"); }

private:
    static postgres_cluster make_shared_cluster() {
        if (const char* dir = std::getenv("GATEHOUSE_TEST_POSTGRES_DIR")) {
            postgres_cluster c;
            c.dir_ = dir;
            try {
                c.read_description();
                c.admin("SELECT 1");
                return c;
            } catch (const std::exception&) {
                // Not there (yet, or any more): start one of our own.
            }
        }
        postgres_cluster c;
        c.dir_ = make_temp_dir();
        c.owned_ = true;
        c.run_script("start");
        c.read_description();
        return c;
    }

    static std::string make_temp_dir() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "gatehouse-unit-pg-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        // The cluster inside runs as the postgres user, which must get through.
        std::filesystem::permissions(
            pattern, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                         std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                         std::filesystem::perms::others_exec);
        return pattern;
    }

    void run_script(const char* verb) const {
        const pid_t child = ::fork();
        if (child < 0) throw std::runtime_error("fork failed");
        if (child == 0) {
            std::string script = GATEHOUSE_TEST_POSTGRES_SCRIPT;
            std::string python = "/usr/bin/python3";
            std::string v = verb;
            std::string d = dir_;
            std::array<char*, 5> argv{python.data(), script.data(), v.data(), d.data(), nullptr};
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        int status = 0;
        while (::waitpid(child, &status, 0) < 0) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            throw std::runtime_error(std::string("postgres_fixture.py ") + verb + " failed");
        }
    }

    void read_description() {
        std::ifstream f(dir_ + "/cluster.json");
        if (!f) throw std::runtime_error("no cluster.json in " + dir_);
        const auto j = nlohmann::json::parse(f);
        port_ = j.at("port").get<std::uint16_t>();
        password_ = j.at("password").get<std::string>();
        socket_dir_ = j.at("dir").get<std::string>();
    }

    std::string dir_;
    std::string socket_dir_;
    std::string password_;
    std::uint16_t port_ = 0;
    bool owned_ = false;
};

/// A database of its own on a cluster, owned by `gatehouse`; dropped (sessions and all) at
/// destruction.
class postgres_database {
public:
    explicit postgres_database(const postgres_cluster& cluster = postgres_cluster::shared())
        : cluster_(cluster) {
        std::random_device rd;
        name_ = "gh_unit_" + std::to_string(rd()) + "_" + std::to_string(rd());
        cluster_.admin("CREATE DATABASE " + name_ + " OWNER gatehouse");
    }
    ~postgres_database() {
        try {
            cluster_.admin("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
        } catch (...) {
        }
    }
    postgres_database(const postgres_database&) = delete;
    postgres_database& operator=(const postgres_database&) = delete;

    const std::string& name() const { return name_; }
    std::string url(const std::string& query = "") const { return cluster_.url(name_, query); }
    /// As postgres_cluster::admin, in this database.
    std::string admin(const std::string& sql) const { return cluster_.admin(sql, name_); }

private:
    const postgres_cluster& cluster_;
    std::string name_;
};

}  // namespace gatehouse_test
