#pragma once
// The websocketpp message type of the gateway's configs: websocketpp's own message, plus an
// outgoing payload that can be shared. A broadcast or room update is encoded once per codec
// (connection_manager) into one immutable buffer; with websocketpp's message every connection
// it goes to would copy that buffer into a message of its own. Here each connection's message
// only points at it, and websocketpp's write path reads it through get_payload().

#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include <websocketpp/message_buffer/alloc.hpp>
#include <websocketpp/message_buffer/message.hpp>

namespace gatehouse::detail {

template <template <class> class con_msg_manager>
class frame_message : public websocketpp::message_buffer::message<con_msg_manager> {
    using base = websocketpp::message_buffer::message<con_msg_manager>;

public:
    // websocketpp names its message pointers through message_type::ptr, so they hold this
    // type and calls through them see the get_payload() below.
    using ptr = std::shared_ptr<frame_message>;
    using manager_ptr = std::shared_ptr<con_msg_manager<frame_message>>;

    // The manager is only kept by websocketpp's message for recycling, which the default
    // allocator never does; it is not passed on (its type is the base's, not ours).
    explicit frame_message(const manager_ptr& /*manager*/) : base(nullptr) {}
    frame_message(const manager_ptr& /*manager*/, websocketpp::frame::opcode::value op,
                  std::size_t size = 128)
        : base(nullptr, op, size) {}
    // An outgoing message built by the gateway, with no manager at all.
    frame_message(websocketpp::frame::opcode::value op, std::shared_ptr<const std::string> shared)
        : base(nullptr, op, 0), shared_(std::move(shared)) {}

    // Hides the base's: websocketpp calls it on message_type, never through the base.
    const std::string& get_payload() const { return shared_ ? *shared_ : base::get_payload(); }

private:
    std::shared_ptr<const std::string> shared_;  // set: the payload, shared with other sends
};

// The message typedefs a websocketpp config needs for frame_message.
struct frame_message_types {
    using message_type = frame_message<websocketpp::message_buffer::alloc::con_msg_manager>;
    using con_msg_manager_type = websocketpp::message_buffer::alloc::con_msg_manager<message_type>;
    using endpoint_msg_manager_type =
        websocketpp::message_buffer::alloc::endpoint_msg_manager<con_msg_manager_type>;
};

}  // namespace gatehouse::detail
