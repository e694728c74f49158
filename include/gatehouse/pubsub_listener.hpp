#pragma once
/// @file
/// `pubsub_listener`: where the gateway hears the updates services publish (docs/protocol.md
/// section 5).

#include <functional>
#include <string_view>
#include <utility>

namespace gatehouse {

/// Called with one published update message, the JSON text a service published. The view
/// is valid only during the call.
using update_handler = std::function<void(std::string_view message)>;

/// Called when a subscription that was lost is back (never for the first one). Updates
/// published while it was down were not delivered: the gateway closes every connection
/// (1012), so clients resume and get them from the update log (docs/protocol.md 6.4).
using resubscribed_handler = std::function<void()>;

/// A source of published update messages.
///
/// The gateway parses each message with `parse_update()` and routes it, so every bus
/// delivers every update shape the same way.
///
/// Thread safety: `start`, `stop` and `connected` may be called from any thread. `on_message`
/// is called from one thread at a time, in the order the messages were published; it must
/// not call `stop()`. `on_resubscribed`'s handler is called on the same terms as `on_message`,
/// from the same thread, before any message that arrived on the new subscription.
class pubsub_listener {
public:
    virtual ~pubsub_listener() = default;

    /// Begins delivering messages to `on_message`. Called once.
    virtual void start(update_handler on_message) = 0;

    /// Sets the handler told each time a lost subscription is re-established; call before
    /// `start()`. After `stop()` it is not running and will not be called. The default
    /// ignores it: a listener that cannot lose its subscription (`in_process_bus`) never
    /// calls it.
    virtual void on_resubscribed(resubscribed_handler handler) {
        const resubscribed_handler dropped = std::move(handler);
    }

    /// Stops delivering; when it returns, `on_message` is not running and will not be called.
    virtual void stop() = 0;

    /// True while the listener is subscribed; drives `GET /ready` with the bus's state.
    virtual bool connected() const noexcept = 0;
};

}  // namespace gatehouse
