// The TLS (wss://, https://) instantiation of the websocketpp server.

#include <websocketpp/config/asio.hpp>

#include "transport/ws_server.hpp"

namespace gatehouse::detail {
namespace {

struct tls_config : websocketpp::config::asio_tls {
    using connection_base = connection_slot;
    using response_type = problem_response;
    static const std::size_t connection_read_buffer_size = read_buffer_bytes;
    using message_type = frame_message_types::message_type;
    using con_msg_manager_type = frame_message_types::con_msg_manager_type;
    using endpoint_msg_manager_type = frame_message_types::endpoint_msg_manager_type;
};

}  // namespace

std::unique_ptr<transport_server> make_tls_server(gateway_core& core, asio::io_context& io,
                                                  std::shared_ptr<asio::ssl::context> tls) {
    auto server = std::make_unique<ws_server<tls_config>>(core, io);
    // One context, loaded once at start, shared by every connection.
    server->endpoint().set_tls_init_handler(
        [tls = std::move(tls)](const websocketpp::connection_hdl&) { return tls; });
    return server;
}

}  // namespace gatehouse::detail
