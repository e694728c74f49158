#pragma once
/// @file
/// The three codecs of docs/protocol.md section 3.
///
/// Each factory returns a new codec that holds no state: one instance may be shared by every
/// thread and connection for as long as anyone holds it.

#include <memory>

#include "gatehouse/codec.hpp"

namespace gatehouse {

/// JSON envelopes in text frames (`"json"`). Encoding converts a MessagePack payload to
/// JSON; an opaque (`bytes`) payload is `errc::payload_not_representable`.
std::shared_ptr<const codec> make_json_codec();

/// MessagePack maps in binary frames (`"msgpack"`). Encoding converts a JSON payload to
/// MessagePack and carries opaque bytes as a MessagePack `bin`.
std::shared_ptr<const codec> make_msgpack_codec();

/// `gatehouse.v1.Envelope` (proto/gatehouse.proto) in binary frames (`"protobuf"`). Any
/// payload travels as bytes, named by `payload_codec`.
std::shared_ptr<const codec> make_protobuf_codec();

}  // namespace gatehouse
