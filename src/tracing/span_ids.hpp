#pragma once
// New trace and span ids.

#include "gatehouse/tracing.hpp"

namespace gatehouse::detail {

// Random and never all zero; from a per-thread generator, without a lock.
trace_id new_trace_id() noexcept;
span_id new_span_id() noexcept;

}  // namespace gatehouse::detail
