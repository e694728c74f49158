#pragma once
/// @file
/// `pubsub_listener`: where the gateway hears the updates services publish (PROTOCOL.md
/// section 5).

#include <functional>
#include <string_view>

namespace gatehouse {

/// Called with one published update message, the JSON text a service published. The view
/// is valid only during the call.
using update_handler = std::function<void(std::string_view message)>;

/// A source of published update messages.
///
/// The gateway parses each message with `parse_update()` and routes it, so every bus
/// delivers every update shape the same way.
///
/// Thread safety: `start`, `stop` and `connected` may be called from any thread. `on_message`
/// is called from one thread at a time, in the order the messages were published; it must
/// not call `stop()`.
class pubsub_listener {
public:
    virtual ~pubsub_listener() = default;

    /// Begins delivering messages to `on_message`. Called once.
    virtual void start(update_handler on_message) = 0;

    /// Stops delivering; when it returns, `on_message` is not running and will not be called.
    virtual void stop() = 0;

    /// True while the listener is subscribed; drives `GET /ready` with the bus's state.
    virtual bool connected() const noexcept = 0;
};

}  // namespace gatehouse
