// stemctl's live commands: `watch` (status, voices and events, redrawn) and `events` (one
// notification a line). Both subscribe, renew and unsubscribe on Ctrl-C. [stemctl's one thread]
#pragma once

#include "session.hpp"

namespace stemd::ctl {

int run_watch(Session& s, double interval, int count);
int run_events(Session& s, bool json, int count);

}  // namespace stemd::ctl
