#pragma once
// rlimits, host side: the policy's limits as the child will set them. The child side is
// rlimits_child.cc.

#include "internal/child_plan.h"
#include "pio/sandbox/policy.h"

namespace pio::sandbox {

// Fills `out` (room for 8) with soft = hard limits, each clamped to the host's own hard limit
// (raising one needs CAP_SYS_RESOURCE, and a policy limit is a ceiling, not a grant). Returns
// how many.
int child_rlimits(const RlimitPolicy& policy, ChildRlimit* out);

}  // namespace pio::sandbox
