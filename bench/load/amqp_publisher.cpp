#include "amqp_publisher.hpp"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

namespace gatehouse_load {
namespace {

amqp_bytes_t bytes(std::string_view s) {
    amqp_bytes_t b;
    b.len = s.size();
    b.bytes = const_cast<char*>(s.data());  // rabbitmq-c only reads it
    return b;
}

}  // namespace

amqp_publisher::amqp_publisher() : conn_(amqp_new_connection()) {}

amqp_publisher::~amqp_publisher() {
    if (conn_ != nullptr) amqp_destroy_connection(conn_);
}

bool amqp_publisher::connect(std::uint16_t port, const std::string& exchange) {
    exchange_ = exchange;
    amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
    timeval limit{2, 0};
    if (socket == nullptr ||
        amqp_socket_open_noblock(socket, "127.0.0.1", port, &limit) != AMQP_STATUS_OK) {
        error_ = "cannot connect";
        return false;
    }
    amqp_set_rpc_timeout(conn_, &limit);
    if (amqp_login(conn_, "/", 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN, "guest",
                   "guest")
            .reply_type != AMQP_RESPONSE_NORMAL) {
        error_ = "login refused";
        return false;
    }
    amqp_channel_open(conn_, 1);
    amqp_exchange_declare(conn_, 1, bytes(exchange_), amqp_cstring_bytes("fanout"), 0, 1, 0, 0,
                          amqp_empty_table);
    if (amqp_get_rpc_reply(conn_).reply_type != AMQP_RESPONSE_NORMAL) {
        error_ = "declaring the updates exchange failed";
        return false;
    }
    return true;
}

void amqp_publisher::publish(std::string_view message) {
    if (broken_) return;
    const int status = amqp_basic_publish(conn_, 1, bytes(exchange_), amqp_empty_bytes, 0, 0,
                                          nullptr, bytes(message));
    if (status != AMQP_STATUS_OK) {
        broken_ = true;
        error_ = amqp_error_string2(status);
    }
}

}  // namespace gatehouse_load
