#include "queue_service.hpp"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "game_service.hpp"

namespace gatehouse_demo::game {
namespace {

constexpr auto backoff_min = std::chrono::milliseconds(50);
constexpr auto backoff_max = std::chrono::milliseconds(2000);

void sleep_unless_stopped(const volatile std::sig_atomic_t& stop, std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (stop == 0 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

amqp_bytes_t bytes(const std::string& s) {
    amqp_bytes_t b;
    b.len = s.size();
    b.bytes = const_cast<char*>(s.data());  // rabbitmq-c only reads it
    return b;
}

std::string text(amqp_bytes_t b) { return {static_cast<const char*>(b.bytes), b.len}; }

bool ok(amqp_connection_state_t conn) {
    return amqp_get_rpc_reply(conn).reply_type == AMQP_RESPONSE_NORMAL;
}

struct connection_deleter {
    void operator()(amqp_connection_state_t conn) const { amqp_destroy_connection(conn); }
};
using connection = std::unique_ptr<amqp_connection_state_t_, connection_deleter>;

struct url_parts {
    std::string user, password, host, vhost;
    int port = 5672;
};

bool parse(const std::string& url, url_parts& out) {
    if (url.rfind("amqp://", 0) != 0) return false;
    std::vector<char> copy(url.begin(), url.end());
    copy.push_back('\0');
    amqp_connection_info info{};
    if (amqp_parse_url(copy.data(), &info) != AMQP_STATUS_OK || info.host == nullptr) {
        return false;
    }
    out.user = info.user;
    out.password = info.password;
    out.host = info.host;
    out.port = info.port;
    out.vhost = info.vhost != nullptr && *info.vhost != '\0' ? info.vhost : "/";
    return true;
}

// Connects, declares what the gateway declares (idempotent, so either may start first) and
// consumes the command queue; null with `why` set on failure.
connection open(const url_parts& where, const queue_service_options& o, std::string& why) {
    connection conn(amqp_new_connection());
    amqp_socket_t* socket = amqp_tcp_socket_new(conn.get());
    timeval limit{5, 0};
    if (socket == nullptr || amqp_socket_open_noblock(socket, where.host.c_str(), where.port,
                                                      &limit) != AMQP_STATUS_OK) {
        why = "cannot connect";
        return nullptr;
    }
    amqp_set_rpc_timeout(conn.get(), &limit);
    if (amqp_login(conn.get(), where.vhost.c_str(), 0, AMQP_DEFAULT_FRAME_SIZE, 10,
                   AMQP_SASL_METHOD_PLAIN, where.user.c_str(), where.password.c_str())
            .reply_type != AMQP_RESPONSE_NORMAL) {
        why = "login refused";
        return nullptr;
    }
    amqp_channel_open(conn.get(), 1);
    if (!ok(conn.get())) return why = "channel.open failed", nullptr;
    const amqp_bytes_t commands = bytes(o.command_exchange);
    amqp_exchange_declare(conn.get(), 1, commands, amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                          amqp_empty_table);
    amqp_queue_declare(conn.get(), 1, commands, 0, 1, 0, 0, amqp_empty_table);
    amqp_queue_bind(conn.get(), 1, commands, commands, amqp_cstring_bytes("#"), amqp_empty_table);
    amqp_exchange_declare(conn.get(), 1, bytes(o.updates_exchange), amqp_cstring_bytes("fanout"), 0,
                          1, 0, 0, amqp_empty_table);
    amqp_basic_qos(conn.get(), 1, 0, static_cast<std::uint16_t>(std::min(o.prefetch, 65535U)), 0);
    amqp_basic_consume(conn.get(), 1, commands, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    if (!ok(conn.get())) return why = "declaring or consuming the command queue failed", nullptr;
    return conn;
}

}  // namespace

queue_service::queue_service(queue_service_options options,
                             std::function<void(const std::string&)> log)
    : options_(std::move(options)), log_(std::move(log)) {}

bool queue_service::run(const volatile std::sig_atomic_t& stop_requested,
                        const std::function<void()>& on_ready) {
    url_parts where;
    if (!parse(options_.amqp_url, where)) return false;
    auto backoff = backoff_min;
    bool announced = false;
    while (stop_requested == 0) {
        std::string why;
        connection conn = open(where, options_, why);
        if (!conn) {
            log_("amqp: " + why + "; retrying");
            sleep_unless_stopped(stop_requested, backoff);
            backoff = std::min(backoff * 2, backoff_max);
            continue;
        }
        backoff = backoff_min;
        if (!announced) {
            announced = true;
            on_ready();
        }
        while (stop_requested == 0) {
            amqp_envelope_t envelope;
            timeval wait{0, 200000};
            amqp_maybe_release_buffers(conn.get());
            const auto reply = amqp_consume_message(conn.get(), &envelope, &wait, 0);
            if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                reply.library_error == AMQP_STATUS_TIMEOUT) {
                continue;
            }
            if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
                log_("amqp: connection lost; reconnecting");
                break;
            }
            std::map<std::string, std::string> h;
            const auto& headers = envelope.message.properties.headers;
            for (int i = 0; i < headers.num_entries; ++i) {
                const auto& e = headers.entries[i];
                if (e.value.kind == AMQP_FIELD_KIND_UTF8 || e.value.kind == AMQP_FIELD_KIND_BYTES) {
                    h[text(e.key)] = text(e.value.value.bytes);
                }
            }
            command c;
            c.type = h["type"];
            c.player_id = h["player_id"];
            c.correlation_id = h["correlation_id"];
            c.codec = h["codec"];
            c.payload = text(envelope.message.body);
            // No entry id: the game's replay check compares stream ids, which are ordered per
            // Redis stream; AMQP message ids are ordered per gateway only.
            if (c.codec == "json" && c.payload == "null") c.payload.clear();
            const auto tag = envelope.delivery_tag;
            amqp_destroy_envelope(&envelope);
            bool published = true;
            if (!c.type.empty() && !c.player_id.empty()) {
                const auto result = handle(store_, c, unix_now_ms());
                if (result.what == handled::answered) {
                    amqp_basic_properties_t props{};
                    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG;
                    props.content_type = amqp_cstring_bytes("application/json");
                    published = amqp_basic_publish(conn.get(), 1, bytes(options_.updates_exchange),
                                                   amqp_empty_bytes, 0, 0, &props,
                                                   bytes(result.update)) == AMQP_STATUS_OK;
                    if (published) ++answered_;
                }
            }
            if (!published || amqp_basic_ack(conn.get(), 1, tag, 0) != AMQP_STATUS_OK) {
                log_("amqp: connection lost while answering; the broker delivers it again");
                break;
            }
        }
        sleep_unless_stopped(stop_requested, backoff);
    }
    return true;
}

}  // namespace gatehouse_demo::game
