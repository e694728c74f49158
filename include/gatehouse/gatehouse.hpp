#pragma once
/// @file
/// Convenience header: the whole public API of gatehouse::gatehouse (the core component).
/// The optional components have headers of their own: gatehouse::redis (redis_bus.hpp,
/// redis_client.hpp, redis_limiter.hpp, ...) and gatehouse::accounts (accounts.hpp,
/// user_store.hpp, ...); see docs/embedding.md.

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/client/codec.hpp"
#include "gatehouse/codec.hpp"
#include "gatehouse/codec_error.hpp"
#include "gatehouse/codec_registry.hpp"
#include "gatehouse/command_bus.hpp"
#include "gatehouse/connection.hpp"
#include "gatehouse/connection_manager.hpp"
#include "gatehouse/envelope.hpp"
#include "gatehouse/errc.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/http.hpp"
#include "gatehouse/in_process_bus.hpp"
#include "gatehouse/jwt.hpp"
#include "gatehouse/log.hpp"
#include "gatehouse/metrics.hpp"
#include "gatehouse/pubsub_listener.hpp"
#include "gatehouse/token_bucket.hpp"
#include "gatehouse/tracing.hpp"
#include "gatehouse/update.hpp"
