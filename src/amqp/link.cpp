#include "amqp/link.hpp"

#include <amqp_tcp_socket.h>
#include <sys/time.h>

namespace gatehouse::detail::amqp {
namespace {

timeval to_timeval(std::chrono::milliseconds d) {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(d.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((d.count() % 1000) * 1000);
    return tv;
}

amqp_bytes_t bytes(std::string_view s) {
    amqp_bytes_t b;
    b.len = s.size();
    b.bytes = const_cast<char*>(s.data());  // rabbitmq-c's type is not const; it only reads
    return b;
}

std::string text(amqp_bytes_t b) { return {static_cast<const char*>(b.bytes), b.len}; }

// Why an RPC failed: the library's reason, or the broker's close code and text.
std::string describe_reply(const amqp_rpc_reply_t& reply, std::string_view what) {
    switch (reply.reply_type) {
        case AMQP_RESPONSE_NORMAL: return {};
        case AMQP_RESPONSE_NONE: return std::string(what) + ": connection closed";
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return std::string(what) + ": " + describe_status(reply.library_error);
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
                const auto* m = static_cast<const amqp_connection_close_t*>(reply.reply.decoded);
                return std::string(what) + ": broker closed the connection (" +
                       std::to_string(m->reply_code) + " " + text(m->reply_text) + ")";
            }
            if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
                const auto* m = static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
                return std::string(what) + ": broker closed the channel (" +
                       std::to_string(m->reply_code) + " " + text(m->reply_text) + ")";
            }
            return std::string(what) + ": unexpected broker answer";
    }
    return std::string(what) + ": failed";
}

}  // namespace

std::string describe_status(int status) { return amqp_error_string2(status); }

link::link() : conn_(amqp_new_connection()) {}

link::~link() { amqp_destroy_connection(conn_); }

std::string link::open(const url& where, std::chrono::milliseconds timeout, int heartbeat_s,
                       const std::string& exchange) {
    if (conn_ == nullptr) return "out of memory";
    amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
    if (socket == nullptr) return "cannot create a socket";
    const timeval limit = to_timeval(timeout);
    amqp_set_handshake_timeout(conn_, &limit);
    amqp_set_rpc_timeout(conn_, &limit);
    if (const int status = amqp_socket_open_noblock(socket, where.host.c_str(), where.port, &limit);
        status != AMQP_STATUS_OK) {
        return "connect: " + describe_status(status);
    }
    open_ = true;
    // Asks the broker to say when it blocks publishing (a memory or disk alarm), so that the
    // bus can refuse commands at once instead of waiting for confirms that will not come.
    amqp_table_entry_t capability[2];
    capability[0].key = amqp_cstring_bytes("connection.blocked");
    capability[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capability[0].value.value.boolean = 1;
    capability[1].key = amqp_cstring_bytes("consumer_cancel_notify");
    capability[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capability[1].value.value.boolean = 1;
    amqp_table_entry_t property[2];
    property[0].key = amqp_cstring_bytes("capabilities");
    property[0].value.kind = AMQP_FIELD_KIND_TABLE;
    property[0].value.value.table.num_entries = 2;
    property[0].value.value.table.entries = capability;
    property[1].key = amqp_cstring_bytes("product");
    property[1].value.kind = AMQP_FIELD_KIND_UTF8;
    property[1].value.value.bytes = amqp_cstring_bytes("gatehouse");
    amqp_table_t properties;
    properties.num_entries = 2;
    properties.entries = property;
    auto reply = amqp_login_with_properties(conn_, where.vhost.c_str(), 0, AMQP_DEFAULT_FRAME_SIZE,
                                            heartbeat_s, &properties, AMQP_SASL_METHOD_PLAIN,
                                            where.user.c_str(), where.password.c_str());
    if (auto why = describe_reply(reply, "login"); !why.empty()) return why;
    amqp_channel_open(conn_, command_channel);
    if (auto why = describe_reply(amqp_get_rpc_reply(conn_), "channel.open"); !why.empty()) {
        return why;
    }
    amqp_confirm_select(conn_, command_channel);
    if (auto why = describe_reply(amqp_get_rpc_reply(conn_), "confirm.select"); !why.empty()) {
        return why;
    }
    return declare_commands(exchange);
}

std::string link::declare_commands(const std::string& exchange) {
    // Durable, not auto-deleted: the exchange and its catch-all queue outlive every gateway,
    // so commands accepted while no service runs wait in the queue.
    amqp_exchange_declare(conn_, command_channel, bytes(exchange), amqp_cstring_bytes("topic"), 0,
                          1, 0, 0, amqp_empty_table);
    if (auto why = describe_reply(amqp_get_rpc_reply(conn_), "exchange.declare " + exchange);
        !why.empty()) {
        return why;
    }
    amqp_queue_declare(conn_, command_channel, bytes(exchange), 0, 1, 0, 0, amqp_empty_table);
    if (auto why = describe_reply(amqp_get_rpc_reply(conn_), "queue.declare " + exchange);
        !why.empty()) {
        return why;
    }
    amqp_queue_bind(conn_, command_channel, bytes(exchange), bytes(exchange),
                    amqp_cstring_bytes("#"), amqp_empty_table);
    return describe_reply(amqp_get_rpc_reply(conn_), "queue.bind " + exchange);
}

std::string link::consume(const std::string& exchange) {
    amqp_channel_open(conn_, updates_channel);
    if (auto why = describe_reply(amqp_get_rpc_reply(conn_), "channel.open"); !why.empty()) {
        return why;
    }
    amqp_exchange_declare(conn_, updates_channel, bytes(exchange), amqp_cstring_bytes("fanout"), 0,
                          1, 0, 0, amqp_empty_table);
    if (auto why = describe_reply(amqp_get_rpc_reply(conn_), "exchange.declare " + exchange);
        !why.empty()) {
        return why;
    }
    // Exclusive and server-named: this connection's own queue, gone with it.
    const auto* declared =
        amqp_queue_declare(conn_, updates_channel, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    if (auto why = describe_reply(amqp_get_rpc_reply(conn_), "queue.declare"); !why.empty()) {
        return why;
    }
    const std::string queue = text(declared->queue);
    amqp_queue_bind(conn_, updates_channel, bytes(queue), bytes(exchange), amqp_empty_bytes,
                    amqp_empty_table);
    if (auto why = describe_reply(amqp_get_rpc_reply(conn_), "queue.bind"); !why.empty()) {
        return why;
    }
    amqp_basic_consume(conn_, updates_channel, bytes(queue), amqp_cstring_bytes("gatehouse"), 0, 1,
                       1, amqp_empty_table);
    return describe_reply(amqp_get_rpc_reply(conn_), "basic.consume");
}

std::string link::cancel() {
    amqp_basic_cancel_t method{};
    method.consumer_tag = amqp_cstring_bytes("gatehouse");
    method.nowait = 1;
    const int status = amqp_send_method(conn_, updates_channel, AMQP_BASIC_CANCEL_METHOD, &method);
    return status == AMQP_STATUS_OK ? std::string{} : "basic.cancel: " + describe_status(status);
}

std::string link::publish(const std::string& exchange, std::string_view routing_key,
                          const amqp_basic_properties_t& properties, std::string_view body) {
    const int status = amqp_basic_publish(conn_, command_channel, bytes(exchange),
                                          bytes(routing_key), 1, 0, &properties, bytes(body));
    return status == AMQP_STATUS_OK ? std::string{} : "publish: " + describe_status(status);
}

int link::next_frame(amqp_frame_t& frame, std::chrono::milliseconds wait) {
    const timeval limit = to_timeval(wait);
    return amqp_simple_wait_frame_noblock(conn_, &frame, &limit);
}

bool link::buffered() const {
    return amqp_frames_enqueued(conn_) != 0 || amqp_data_in_buffer(conn_) != 0;
}

void link::release() { amqp_maybe_release_buffers(conn_); }

int link::fd() const { return open_ ? amqp_get_sockfd(conn_) : -1; }

void link::close(std::chrono::milliseconds wait) {
    if (!open_) return;
    const timeval limit = to_timeval(wait);
    amqp_set_rpc_timeout(conn_, &limit);
    amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    open_ = false;
}

}  // namespace gatehouse::detail::amqp
