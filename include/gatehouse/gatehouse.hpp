#pragma once
/// @file
/// Convenience header: the whole public API of the library.

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/client/codec.hpp"
#include "gatehouse/codec.hpp"
#include "gatehouse/codec_error.hpp"
#include "gatehouse/codec_registry.hpp"
#include "gatehouse/envelope.hpp"
#include "gatehouse/errc.hpp"
