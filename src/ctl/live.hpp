// stemctl's live commands: `watch` (status, voices and events, redrawn) and `events` (one
// notification a line). Both subscribe, renew and unsubscribe on Ctrl-C. [stemctl's one thread]
#pragma once

#include "session.hpp"

namespace stemd::ctl {

// `interval_given`: --interval was given. Into a pipe or a file the default is 1 s (a frame every
// 0.25 s is for the eye), on a terminal 0.25 s.
int run_watch(Session& s, double interval, int count, bool interval_given = true);

int run_events(Session& s, bool json, int count);

}  // namespace stemd::ctl
