// The plain (ws://, http://) instantiation of the websocketpp server.

#include <websocketpp/config/asio_no_tls.hpp>

#include "transport/ws_server.hpp"

namespace gatehouse::detail {
namespace {

struct plain_config : websocketpp::config::asio {
    using connection_base = connection_slot;
    using response_type = problem_response;
    static const std::size_t connection_read_buffer_size = read_buffer_bytes;
    using message_type = frame_message_types::message_type;
    using con_msg_manager_type = frame_message_types::con_msg_manager_type;
    using endpoint_msg_manager_type = frame_message_types::endpoint_msg_manager_type;
};

}  // namespace

std::unique_ptr<transport_server> make_plain_server(gateway_core& core, asio::io_context& io) {
    return std::make_unique<ws_server<plain_config>>(core, io);
}

}  // namespace gatehouse::detail
