// What the opener threads hand back to the router's control thread: finished loads
// (router_loads.cpp) and the streams opened for plays (router_streams.cpp). [control] reads them;
// the opener threads only append, under the mutex, and call `wake`.
#pragma once

#include "router.hpp"

#include "io/loader_thread.hpp"
#include "io/source.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace stemd::control {

// One finished load.
struct Router::LoadDone {
  std::uint64_t token = 0;
  int id = 0;
  std::unique_ptr<io::Source> source;
  bool same = false;                  // ensure: the id already holds this very file
  ErrorKind kind = ErrorKind::kFile;  // of failure: kPath (policy, open) or kFile (not a regular file, decode, budget…)
  std::string error;
};

// One stream opened for a play: for `id` as it held load `serial` when the play asked.
struct Router::OpenedStream {
  int id = 0;
  std::uint64_t serial = 0;
  std::unique_ptr<io::LoaderThread::Opened> opened;  // null: error says why
  std::string error;
};

// Every stream one message's plays needed, opened in one job.
struct Router::StreamsDone {
  std::uint64_t token = 0;
  std::vector<OpenedStream> streams;
  double open_ms = 0;  // how long the job took (wall clock)
};

struct Router::LoadCompletions {
  std::mutex mutex;
  std::vector<LoadDone> done;
  std::vector<StreamsDone> streams;
  std::function<void()> wake;
};

}  // namespace stemd::control
