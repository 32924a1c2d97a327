// The loader thread (see loader_thread.hpp).
#include "loader_thread.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

namespace stemd::io {

class LoaderThread::Reader : public Stream {
 public:
  Reader(std::size_t ring_frames, std::string path) : Stream(ring_frames), path(std::move(path)) {}
  std::string path;
  SoundFile file;
  std::int64_t next_frame = 0;     // file frame of the next read
  std::int64_t total_frames = -1;  // what the header promised (-1: unknown)
  bool done = false;               // finish() was published
  std::int64_t region_start = 0;
  std::int64_t region_end = -1;   // -1: the file's end
  std::uint32_t passes_left = 0;  // 0 = forever
};

LoaderThread::LoaderThread(const LoaderConfig& cfg) : cfg_(cfg) {
  sem_init(&wake_, 0, 0);
  buf_.resize(static_cast<std::size_t>(cfg_.chunk_frames) * 2);
}

LoaderThread::~LoaderThread() {
  stop();
  for (Reader* r : readers_) delete r;
  for (Reader* r : pending_add_) delete r;
  sem_destroy(&wake_);
}

void LoaderThread::start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] { run(); });
}

void LoaderThread::stop() {
  if (!running_.exchange(false)) return;
  wake();
  if (thread_.joinable()) thread_.join();
}

Stream* LoaderThread::create_stream(const Source& src, std::int64_t from_frame, bool loop, std::string& error) {
  return create_stream(src, from_frame, loop, 0, 0, 0, error);
}

Stream* LoaderThread::create_stream(const Source& src, std::int64_t from_frame, bool loop, std::int64_t region_start,
                                    std::int64_t region_end, std::uint32_t passes, std::string& error) {
  auto r = std::make_unique<Reader>(static_cast<std::size_t>(cfg_.ring_frames), src.path);
  r->region_start = std::max<std::int64_t>(0, region_start);
  r->region_end = region_end > r->region_start ? region_end : -1;
  r->passes_left = passes;
  if (!r->file.open(src.file, error)) {
    error = src.path + ": " + error;
    return nullptr;
  }
  r->total_frames = src.info.frames;
  r->set_loop(loop);
  if (from_frame > 0 && !r->file.seek(from_frame)) {
    error = src.path + ": cannot seek to frame " + std::to_string(from_frame) + ": " + r->file.error();
    return nullptr;
  }
  r->next_frame = from_frame;
  if (from_frame >= src.view.memory_frames) {
    // No head covers the start: decode the first frames now so play starts in the next callback.
    // Never more than the ring holds: a frame read and not written would be lost.
    std::int64_t want =
        std::min<std::int64_t>(cfg_.prefill_frames, static_cast<std::int64_t>(r->ring().writable_frames()));
    if (r->region_end > 0) want = std::max<std::int64_t>(0, std::min(want, r->region_end - r->next_frame));
    std::vector<float> tmp(static_cast<std::size_t>(want) * 2);
    const std::int64_t got = r->file.read_stereo(tmp.data(), want);
    if (got < 0) {
      error = src.path + ": " + r->file.error();
      return nullptr;
    }
    r->ring().write(tmp.data(), static_cast<std::size_t>(got));
    r->next_frame += got;
    if (got < want || (r->region_end > 0 && r->next_frame >= r->region_end)) {
      std::lock_guard lock(mutex_);
      end_of_data(*r);
    }
  }
  Reader* raw = r.release();
  {
    std::lock_guard lock(mutex_);
    pending_add_.push_back(raw);
  }
  wake();
  return raw;
}

void LoaderThread::release(Stream* s) {
  if (s == nullptr) return;
  {
    std::lock_guard lock(mutex_);
    pending_remove_.push_back(s);
  }
  wake();
}

LoaderStats LoaderThread::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void LoaderThread::wait_idle() {
  const std::uint64_t start = pass_counter_.load();
  for (int i = 0; i < 2000 && pass_counter_.load() < start + 2 && running_.load(); ++i) {
    wake();
    timespec ts{0, 500'000};
    nanosleep(&ts, nullptr);
  }
}

// The reader hit the end of the file's data: loop, finish, or report a file that ended before
// its header said (truncated while streaming). Returns true when there is more to read.
// Called with mutex_ held (stats).
bool LoaderThread::end_of_data(Reader& r) {
  const bool region_done = r.region_end > 0 && r.next_frame >= r.region_end;
  const bool short_file = !region_done && r.total_frames >= 0 && r.next_frame < r.total_frames;
  if (short_file) {
    spdlog::warn("stream {}: file ended at frame {} of {} (truncated while streaming?)", r.path, r.next_frame,
                 r.total_frames);
    ++stats_.truncated;
    r.finish(engine::EndReason::kError);
    r.done = true;
    return false;
  }
  if (r.loop() && r.passes_left != 1) {
    if (r.next_frame <= r.region_start) {  // nothing to loop over
      r.finish(engine::EndReason::kError);
      r.done = true;
      return false;
    }
    if (r.passes_left > 1) --r.passes_left;
    if (!r.file.seek(r.region_start)) {
      spdlog::error("stream {}: cannot seek to the loop start: {}", r.path, r.file.error());
      ++stats_.read_errors;
      r.finish(engine::EndReason::kError);
      r.done = true;
      return false;
    }
    r.next_frame = r.region_start;
    ++stats_.loop_wraps;
    return true;
  }
  r.finish(engine::EndReason::kEndOfFile);
  r.done = true;
  return false;
}

bool LoaderThread::fill(Reader& r) {
  if (r.done) return false;
  SampleRing& ring = r.ring();
  const auto writable = static_cast<std::int64_t>(ring.writable_frames());
  std::int64_t n = std::min<std::int64_t>(writable, cfg_.chunk_frames);
  if (n <= 0) return false;
  if (r.region_end > 0) {
    if (r.next_frame >= r.region_end) {
      std::lock_guard lock(mutex_);
      return end_of_data(r);
    }
    n = std::min(n, r.region_end - r.next_frame);
  }

  const std::int64_t got = r.file.read_stereo(buf_.data(), n);
  std::lock_guard lock(mutex_);  // stats only; cheap and never contended by [audio]
  ++stats_.reads;
  if (got < 0) {
    spdlog::error("stream {}: read error at frame {}: {}", r.path, r.next_frame, r.file.error());
    ++stats_.read_errors;
    r.finish(engine::EndReason::kError);
    r.done = true;
    return false;
  }
  if (got > 0) {
    ring.write(buf_.data(), static_cast<std::size_t>(got));
    r.next_frame += got;
    stats_.frames_read += static_cast<std::uint64_t>(got);
  }
  if (got < n || (r.region_end > 0 && r.next_frame >= r.region_end)) return end_of_data(r);
  return true;
}

void LoaderThread::run() {
  std::vector<std::pair<std::uint32_t, Reader*>> order;
  while (running_.load(std::memory_order_relaxed)) {
    timespec deadline{};
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += static_cast<long>(cfg_.wake_timeout_ms) * 1'000'000L;
    while (deadline.tv_nsec >= 1'000'000'000L) {
      deadline.tv_nsec -= 1'000'000'000L;
      ++deadline.tv_sec;
    }
    while (sem_timedwait(&wake_, &deadline) != 0 && errno == EINTR) {
    }
    while (sem_trywait(&wake_) == 0) {  // coalesce a burst of wakes into one pass
    }

    {
      std::lock_guard lock(mutex_);
      for (Reader* r : pending_add_) readers_.push_back(r);
      pending_add_.clear();
      for (Stream* s : pending_remove_) {
        auto it = std::find(readers_.begin(), readers_.end(), static_cast<Reader*>(s));
        if (it != readers_.end()) {
          delete *it;
          *it = readers_.back();
          readers_.pop_back();
        }
      }
      pending_remove_.clear();
      stats_.streams = readers_.size();
      ++stats_.passes;
    }

    // Emptiest first, until every ring is full or finished. Reads stop early when asked to quit.
    for (int round = 0; round < 64 && running_.load(std::memory_order_relaxed); ++round) {
      order.clear();
      for (Reader* r : readers_) {
        if (r->done) continue;
        const auto cap = r->ring().capacity_frames();
        const auto writable = r->ring().writable_frames();
        // Skip rings with less room than a useful read, unless they are getting low.
        if (writable == 0 || (writable < static_cast<std::size_t>(cfg_.chunk_frames) / 2 && writable < cap / 2)) {
          continue;
        }
        const auto fill_permille = static_cast<std::uint32_t>((cap - writable) * 1000 / cap);
        order.emplace_back(fill_permille, r);
      }
      if (order.empty()) break;
      std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& entry : order) fill(*entry.second);
    }
    pass_counter_.fetch_add(1, std::memory_order_release);
  }
}

}  // namespace stemd::io
