// The loader thread (see loader_thread.hpp).
#include "loader_thread.hpp"

#include "loader_reader.hpp"
#include "base/log_guard.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <pthread.h>
#include <sched.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <ctime>
#include <tuple>

namespace stemd::io {

LoaderThread::LoaderThread(const LoaderConfig& cfg) : cfg_(cfg) {
  sem_init(&wake_, 0, 0);
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) {
    spdlog::warn(
        "loader: no inotify ({}): every streamed read also reads its file's header, to notice a file "
        "rewritten under a playing voice",
        std::strerror(errno));
  }
  bells_ = std::make_unique<std::atomic<std::uint64_t>[]>(kBellSlots / 64);
  for (std::uint32_t k = 0; k < kBellSlots / 64; ++k) bells_[k].store(0, std::memory_order_relaxed);
  free_slots_.reserve(kBellSlots);
  for (std::uint32_t k = kBellSlots; k-- > 0;) free_slots_.push_back(k);  // slot 0 handed out first
  slot_reader_.assign(kBellSlots, nullptr);
  min_frames_ = cfg_.ring_min_frames > 0 ? std::min(cfg_.ring_min_frames, cfg_.ring_frames) : cfg_.ring_frames;
  max_frames_ = cfg_.ring_max_frames > 0 ? std::max(cfg_.ring_max_frames, cfg_.ring_frames) : cfg_.ring_frames;
  // Adaptive: one read may bring a ring from empty to its target (a slow disk costs a latency
  // per read, so few large reads beat many small ones). Fixed: chunk-sized reads, as always.
  max_read_frames_ = adaptive() ? std::max(cfg_.chunk_frames, max_frames_) : cfg_.chunk_frames;
}

LoaderThread::~LoaderThread() {
  stop();
  for (Reader* r : readers_) delete r;
  for (Reader* r : pending_add_) delete r;
  // A stuck thread's: deleted when its read returns (release_orphan erases: no range-for here).
  while (!orphans_.empty()) release_orphan(orphans_.back());
  if (inotify_fd_ >= 0) ::close(inotify_fd_);  // its watches go with it
  sem_destroy(&wake_);
}

Stream* LoaderThread::create_stream(const Source& src, std::int64_t from_frame, bool loop, std::string& error) {
  return create_stream(src, from_frame, loop, 0, 0, 0, error);
}

Stream* LoaderThread::create_stream(const Source& src, std::int64_t from_frame, bool loop, std::int64_t region_start,
                                    std::int64_t region_end, std::uint32_t passes, std::string& error) {
  const StreamRequest req{from_frame, loop, region_start, region_end, passes};
  std::unique_ptr<Opened> opened = open_stream(plan_stream(src), src, req, error);
  return opened ? adopt(std::move(opened)) : nullptr;
}

LoaderThread::Opened::Opened() = default;
LoaderThread::Opened::~Opened() = default;
void LoaderThread::Opened::set_device_for_test(std::uint64_t dev) { reader_->dev = dev; }

LoaderThread::StreamPlan LoaderThread::plan_stream(const Source& src) const {
  // The ring's capacity is decided here, once: what a fixed ring had (ring_frames), or more when
  // this source's (or, for a new one, the loader's) observed waits ask for it.
  StreamPlan p;
  p.target = cfg_.ring_frames;
  p.capacity = cfg_.ring_frames;
  p.prefill_frames = cfg_.prefill_frames;
  p.sample_rate = cfg_.sample_rate;
  // A 16-bit stereo file's ring holds its samples as int16 (half the bytes; converted as mixed).
  p.int16 = cfg_.int16_rings && src.info.int16 && src.info.channels == 2;
  const auto bytes = [&p](std::int64_t frames) {
    return frames * static_cast<std::int64_t>(
                        SampleRing::bytes_per_frame(p.int16 ? SampleFormat::kInt16 : SampleFormat::kFloat));
  };
  if (adaptive()) {
    const std::int64_t known = src.jitter ? src.jitter->target_frames.load(std::memory_order_relaxed) : 0;
    p.target = std::clamp(known > 0 ? known : std::max(cfg_.ring_frames, hint_frames_.load(std::memory_order_relaxed)),
                          min_frames_, max_frames_);
    // Headroom to grow quickly above a target that already exceeds the steady ring size; never
    // more than kGrowBudgetBytes of rings in all (thousands of voices keep ring_frames).
    if (p.target > cfg_.ring_frames) {
      p.capacity = std::clamp(p.target + p.target / 2, min_frames_, max_frames_);
      if (ring_bytes_.load(std::memory_order_relaxed) + bytes(p.capacity) > kGrowBudgetBytes) {
        p.capacity = cfg_.ring_frames;
        p.target = p.capacity;
      }
    }
  }
  return p;
}

std::unique_ptr<LoaderThread::Opened> LoaderThread::open_stream(const StreamPlan& plan, const Source& src,
                                                                const StreamRequest& req, std::string& error) {
  if (!src.file) {  // held whole in memory: its descriptor was closed at load (source.hpp)
    error = src.path + ": held in memory, it has no stream to open";
    return nullptr;
  }
  const SampleFormat format = plan.int16 ? SampleFormat::kInt16 : SampleFormat::kFloat;
  // The ring is charged to the memory budget before it is allocated (its reader at open below).
  Charge ring_charge;
  if (!ring_charge.take(src.budget, plan.capacity * static_cast<std::int64_t>(SampleRing::bytes_per_frame(format)),
                        error)) {
    error = src.path + ": " + error;
    return nullptr;
  }
  auto opened = std::make_unique<Opened>();
  opened->reader_ = std::make_unique<Reader>(static_cast<std::size_t>(plan.capacity), format, src.path);
  Reader* r = opened->reader_.get();
  r->ring_charge = std::move(ring_charge);
  r->dev = src.file ? src.file->identity().dev : 0;
  r->jitter = src.jitter ? src.jitter : std::make_shared<ReadJitter>();
  r->file_rate = src.info.sample_rate > 0 ? src.info.sample_rate : plan.sample_rate;
  r->target = std::min(plan.target, plan.capacity);
  r->logged_target = r->target;
  r->grown_ns = mono_ns();  // the first target holds as long as a grown one before shrinking
  r->last_write_ns = r->grown_ns;
  r->region_start = std::max<std::int64_t>(0, req.region_start);
  r->region_end = req.region_end > r->region_start ? req.region_end : -1;
  r->passes_left = req.passes;
  SoundFile::Limits lim;
  lim.max_channels = src.max_channels;
  lim.budget = src.budget;
  lim.max_read_frames = std::max(plan.capacity, plan.prefill_frames);
  lim.i16_reads_only = format == SampleFormat::kInt16;  // read straight into the ring: no scratch
  if (!r->file.open(src.file, error, lim)) {
    error = src.path + ": " + error;
    return nullptr;
  }
  if (!r->file.describes_as_loaded(src.info, error)) {  // rewritten in place since its load
    error = src.path + ": " + error;
    return nullptr;
  }
  // Truncated since its load: say so now, not at the new end mid-play (wherever the play starts).
  // Longer (rewritten in place, or a recording that grew): the voice would play past the length
  // the source was loaded with (its head from the old file, its position wrapping at the old end).
  // (A file whose count is not its size's, FLAC, reopens with what it declares: a cut one more
  // than the frames its load found it to hold.)
  const std::int64_t loaded = src.info.sized ? src.info.frames : src.info.declared_frames;
  if (const std::int64_t now = r->file.info().frames; loaded > 0 && now >= 0 && now != loaded) {
    error = src.path + ": the file is " + (now < loaded ? "shorter" : "longer") + " than when it was loaded (" +
            std::to_string(now) + " frames, was " + std::to_string(loaded) + "): load it again";
    return nullptr;
  }
  r->total_frames = src.info.frames;
  r->set_loop(req.loop);
  if (req.from_frame > 0 && !r->file.seek(req.from_frame)) {  // (a truncation was refused above)
    error = src.path + ": cannot seek to frame " + std::to_string(req.from_frame) + ": " + r->file.error();
    return nullptr;
  }
  r->next_frame = req.from_frame;
  if (req.from_frame >= src.view.memory_frames) {
    // No head covers the start: decode the first frames now so play starts in the next callback.
    // Never more than the ring holds: a frame read and not written would be lost.
    std::int64_t want =
        std::min<std::int64_t>(plan.prefill_frames, static_cast<std::int64_t>(r->ring().writable_frames()));
    if (const std::int64_t end = r->region_end > 0 ? r->region_end : r->total_frames; end >= 0)
      want = std::max<std::int64_t>(0, std::min(want, end - r->next_frame));
    const std::int64_t got = r->read_into_ring(want);
    if (got < 0) {
      error = src.path + ": " + r->file.error();
      return nullptr;
    }
    r->ring().commit(static_cast<std::size_t>(got));
    r->next_frame += got;
    r->written += static_cast<std::uint64_t>(got);
    opened->ended_ = got < want || (r->region_end > 0 && r->next_frame >= r->region_end) ||
                     (r->total_frames >= 0 && r->next_frame >= r->total_frames);
  }
  r->cache_region(src.budget);  // a short loop: read once, played from memory
  return opened;
}

Stream* LoaderThread::adopt(std::unique_ptr<Opened> opened) {
  if (!opened || !opened->reader_) return nullptr;
  Reader* raw = opened->reader_.release();
  ring_bytes_.fetch_add(raw->ring_bytes(), std::memory_order_relaxed);
  publish_low_water(*raw);
  {
    std::lock_guard lock(mutex_);
    if (!free_slots_.empty()) {  // its doorbell, set before the engine can reach the stream
      raw->slot = free_slots_.back();
      free_slots_.pop_back();
      raw->ring().set_doorbell(&bells_[raw->slot / 64], 1ull << (raw->slot % 64));
    }
    if (opened->ended_) end_of_data(*raw);
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
  std::uint64_t since = 0;
  {
    std::lock_guard threads(thread_mu_);
    const std::uint64_t t = guard_ ? guard_->token.load(std::memory_order_acquire) : 0;
    if (t != 0 && (t & ReadGuard::kGivenUp) == 0) since = guard_->since_ns.load(std::memory_order_relaxed);
  }
  std::lock_guard lock(mutex_);
  LoaderStats s = stats_;
  const std::uint64_t now = mono_ns();
  s.read_ms_now = since != 0 && now > since ? static_cast<double>(now - since) * 1e-6 : 0;
  return s;
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
    spdlog::warn("stream {}: file ended at frame {} of {} (truncated while streaming?)", base::log_escape(r.path),
                 r.next_frame, r.total_frames);
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
    // The seek is the next read's (fill_once, under the read guard): a seek may read the file, and
    // this runs under mutex_.
    r.seek_pending = !r.region_cached();
    r.next_frame = r.region_start;
    ++stats_.loop_wraps;
    return true;
  }
  r.finish(engine::EndReason::kEndOfFile);
  r.done = true;
  return false;
}

// A read that reaches the end of the loop (or region) wraps to its start and goes on at once,
// in the same turn: sent to the back of the pass, the rest of the refill would wait for every
// other needy ring first — with 8,192 voices looping in step that took longer than the rings'
// margin and all of them ran dry at the wrap (stream_bench search, 2026-12-04). Bounded: a loop
// shorter than a read wraps at most kWrapsPerFill times per turn.
bool LoaderThread::fill(Reader& r, std::uint64_t needy_since_ns) {
  for (int k = 0; k < kWrapsPerFill; ++k) {
    bool wrapped = false;
    if (!fill_once(r, k == 0 ? needy_since_ns : 0, &wrapped)) return false;
    if (!wrapped) return true;
  }
  return true;
}

bool LoaderThread::fill_once(Reader& r, std::uint64_t needy_since_ns, bool* wrapped) {
  if (r.done) return false;
  SampleRing& ring = r.ring();
  const auto writable = static_cast<std::int64_t>(ring.writable_frames());
  const std::int64_t fill = r.capacity() - writable;
  // The whole free span in one read when refilled from half, else up to the target.
  std::int64_t n = std::min(
      {writable, r.half_ring(adaptive()) ? writable : std::max<std::int64_t>(r.target - fill, 0), max_read_frames_});
  if (r.target - fill <= 0) n = 0;
  if (n <= 0) return false;
  if (r.in_cached_region()) return fill_cached(r, n, fill);
  // A region ends where it says; a file where its load found its end: no read past it (a FLAC cut
  // inside a block: a read that starts at its partial block fails "lost sync", where one that
  // runs into it returns what decodes — the voice ended in an error or not by the reads' sizes).
  if (const std::int64_t end = r.region_end > 0 ? r.region_end : r.total_frames; end >= 0) {
    if (r.next_frame >= end) {
      std::lock_guard lock(mutex_);
      *wrapped = end_of_data(r);
      return *wrapped;
    }
    n = std::min(n, end - r.next_frame);
  }

  if (r.seek_pending) {  // a loop wrapped (end_of_data)
    bool sought = false;
    if (!guarded(r, [&] {
          r.landed = 0;  // given up here: nothing read to publish
          sought = r.file.seek(r.next_frame);
        }))
      return false;
    r.seek_pending = false;
    if (!sought) {
      std::lock_guard lock(mutex_);
      spdlog::error("stream {}: cannot seek to the loop start: {}", base::log_escape(r.path), r.file.error());
      ++stats_.read_errors;
      r.finish(engine::EndReason::kError);
      r.done = true;
      return false;
    }
  }
  const std::uint64_t t0 = mono_ns();
  // Decoded straight into the ring (its one or two free pieces), published below by commit().
  std::int64_t got = 0;
  r.landed_check = r.watch < 0 || r.header_check;
  if (!guarded(r, [&] {
        got = r.read_into_ring(n);
        // Given up meanwhile, this thread checks what it read (the header, if this read had to)
        // and it is published at its stream's take-back (publish_landed).
        r.landed = got;
        r.landed_want = n;
        r.landed_ok = false;
        if (std::string why; got > 0 && given_up_meanwhile()) {
          r.landed_ok = !r.landed_check || r.file.header_unchanged(why);
        }
      }))
    return false;  // given up: touch nothing
  const std::uint64_t t1 = mono_ns();
  read_max_s_ = std::max(read_max_s_, static_cast<double>(t1 - t0) * 1e-9);
  // Rewritten in place since the stream opened (another format or length): the frames just read
  // are not the file that was loaded — its 24-bit bytes read as 16-bit frames are full-scale
  // noise. Checked before they are published, once its file was written to (its watch's event,
  // read_watch_events) — or at every read when it has no watch (loader_thread.hpp).
  const bool check = got > 0 && (r.watch < 0 || r.header_check);
  std::string changed;
  bool rewritten = false;
  if (check && !guarded(r, [&] { rewritten = !r.file.header_unchanged(changed); })) return false;
  if (got > 0 && !rewritten) {
    r.header_check = false;
    r.strikes = 0;
    if (r.primed && static_cast<std::int64_t>(ring.writable_frames()) == r.capacity()) {
      r.primed = false;  // it ran dry while this read was under way
      ++dry_count_;
      adapt(r, t1, true);
    }
    ring.commit(static_cast<std::size_t>(got));
    r.next_frame += got;
    r.written += static_cast<std::uint64_t>(got);
    r.last_write_ns = t1;
    if (fill + got >= r.target) r.primed = true;
    // How long this stream waited for its data: one sample of its source's jitter.
    if (needy_since_ns != 0 && needy_since_ns <= t1) {
      ReadJitter& j = *r.jitter;
      const double x = static_cast<double>(t1 - needy_since_ns) * 1e-9;
      if (!j.seeded) {
        j.mean_s = x;
        j.var_s = 0;
        j.seeded = true;
      } else {
        const double d = x - j.mean_s;
        j.mean_s += kAlpha * d;
        j.var_s = (1 - kAlpha) * (j.var_s + kAlpha * d * d);
      }
      adapt(r, t1, false);  // a spike grows the target now, not at the next sweep
    }
  }
  std::lock_guard lock(mutex_);  // stats only; cheap and never contended by [audio]
  ++stats_.reads;
  stats_.header_checks += check ? 1 : 0;
  if (got < 0 || rewritten) {  // the stream ends with an error; a rewritten file's frames unpublished
    if (rewritten) {
      spdlog::error("stream {}: {} (at frame {})", base::log_escape(r.path), changed, r.next_frame);
    } else {
      spdlog::error("stream {}: read error at frame {}: {}", base::log_escape(r.path), r.next_frame, r.file.error());
    }
    ++stats_.read_errors;
    r.finish(engine::EndReason::kError);
    r.done = true;
    return false;
  }
  if (got > 0) stats_.frames_read += static_cast<std::uint64_t>(got);
  if (got < n || (r.region_end > 0 && r.next_frame >= r.region_end) ||
      (r.region_end <= 0 && r.total_frames >= 0 && r.next_frame >= r.total_frames)) {
    *wrapped = end_of_data(r);
    return *wrapped;
  }
  return true;
}

// A cached loop region (Reader::cache_region): `n` frames copied in, wrapping as often as the loop
// is short, all in this turn (no read, so nothing to wait for and no disk to share). Ends the
// stream at the region's end when it no longer loops (or its last pass is done).
bool LoaderThread::fill_cached(Reader& r, std::int64_t n, std::int64_t fill) {
  std::int64_t done = 0;
  std::uint64_t wraps = 0;
  bool ended = false;
  while (done < n) {
    if (r.next_frame >= r.region_end) {
      if (!r.loop() || r.passes_left == 1) {
        ended = true;
        break;
      }
      if (r.passes_left > 1) --r.passes_left;
      r.next_frame = r.region_start;
      ++wraps;
    }
    const std::int64_t k = std::min(n - done, r.region_end - r.next_frame);
    r.copy_region(done, r.next_frame - r.region_start, k);
    done += k;
    r.next_frame += k;
  }
  const std::uint64_t now = mono_ns();
  if (done > 0) {
    r.ring().commit(static_cast<std::size_t>(done));
    r.written += static_cast<std::uint64_t>(done);
    r.last_write_ns = now;
    if (fill + done >= r.target) r.primed = true;
  }
  std::lock_guard lock(mutex_);
  stats_.loop_wraps += wraps;
  if (ended) end_of_data(r);  // not looping (any more) or the last pass: finished
  return false;
}

// [loader] Streams added and released since the last pass; the added ones go to `fresh`. Released
// ones are deleted, and new (or taken-back) ones watched under the read guard, once mutex_ (which
// [control] takes) is let go. False: given up in a watch — the thread returns, touching nothing.
bool LoaderThread::take_pending(std::vector<Reader*>& fresh) {
  {
    std::lock_guard lock(mutex_);
    for (Reader* r : pending_add_) {
      to_watch_.push_back(r);
      readers_.push_back(r);
      fresh.push_back(r);
      if (r->slot != kNoSlot) {
        slot_reader_[r->slot] = r;
      } else {
        unbelled_.push_back(r);
      }
    }
    pending_add_.clear();
    for (Stream* s : pending_remove_) {
      auto* r = static_cast<Reader*>(s);
      auto it = std::find(readers_.begin(), readers_.end(), r);
      if (it == readers_.end()) {
        release_orphan(r);  // a stream whose read was given up, if it is one
        continue;
      }
      ring_bytes_.fetch_sub(r->ring_bytes(), std::memory_order_relaxed);
      if (r->slot != kNoSlot) {  // the engine has retired it: nothing sets its bit any more
        slot_reader_[r->slot] = nullptr;
        bells_[r->slot / 64].fetch_and(~(1ull << (r->slot % 64)), std::memory_order_relaxed);
        free_slots_.push_back(r->slot);
      } else {
        unbelled_.erase(std::remove(unbelled_.begin(), unbelled_.end(), r), unbelled_.end());
      }
      std::erase(fresh, r);
      std::erase(to_watch_, r);
      unwatch(*r);
      doomed_.push_back(r);
      *it = readers_.back();
      readers_.pop_back();
    }
    pending_remove_.clear();
    if (!orphans_.empty()) take_back_orphans();
    stats_.streams = readers_.size();
    ++stats_.passes;
  }
  for (Reader* r : doomed_) delete r;  // its file's close goes to the closer (file_closer.hpp)
  doomed_.clear();
  while (!to_watch_.empty()) {                    // from the back: given up in one, the rest are still to watch
    if (!watch(*to_watch_.back())) return false;  // given up: give_up() took that one off
    to_watch_.pop_back();
  }
  return true;
}

// [loader] The streams whose consumer rang since the last call (each once per pass id).
void LoaderThread::collect_bells(std::vector<Reader*>& out, std::uint64_t pass) {
  for (std::uint32_t w = 0; w < kBellSlots / 64; ++w) {
    if (bells_[w].load(std::memory_order_relaxed) == 0) continue;
    std::uint64_t bits = bells_[w].exchange(0, std::memory_order_acquire);
    while (bits != 0) {
      const int b = __builtin_ctzll(bits);
      bits &= bits - 1;
      Reader* r = slot_reader_[w * 64 + static_cast<std::uint32_t>(b)];
      if (r == nullptr) {  // adopted after this pass took the new streams: next pass
        bells_[w].fetch_or(1ull << b, std::memory_order_relaxed);
        continue;
      }
      ++bells_answered_;
      if (r->looked_in_pass == pass) continue;
      r->looked_in_pass = pass;
      out.push_back(r);
    }
  }
}

void LoaderThread::run(const std::shared_ptr<ReadGuard>& guard) {
  this_guard() = guard.get();
  given_up() = false;
  set_priority();
  Order order;
  std::vector<Reader*> look, fresh;
  while (running_.load(std::memory_order_relaxed)) {
    timespec deadline{};
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += cfg_.sleep_ms(!readers_.empty()) * 1'000'000L;
    while (deadline.tv_nsec >= 1'000'000'000L) {
      deadline.tv_nsec -= 1'000'000'000L;
      ++deadline.tv_sec;
    }
    while (sem_timedwait(&wake_, &deadline) != 0 && errno == EINTR) {
    }
    while (sem_trywait(&wake_) == 0) {  // coalesce a burst of wakes into one pass
    }
    fresh.clear();
    if (!take_pending(fresh)) return;  // stuck in a watch and replaced: nothing here is ours any more

    // Emptiest (relative to its target) first, until every ring is at its target or finished.
    // Reads stop early when asked to quit.
    // A slow disk can keep every ring needy round after round: after 100 ms the pass ends anyway,
    // so new and released streams, the adaptation and the log are never held up for long.
    // Looked at: every ring every kAdaptEveryNs (the safety net); otherwise the rings whose
    // doorbell rang, the new ones, those past the doorbell slots, and those filled in the last
    // round (a read may have stopped short of the low-water mark).
    const std::uint64_t pass_start = mono_ns();
    const bool sweep = pass_start - last_sweep_ns_ >= kAdaptEveryNs;
    if (sweep) last_sweep_ns_ = pass_start;
    for (int round = 0; round < 64 && running_.load(std::memory_order_relaxed); ++round) {
      const std::uint64_t now = mono_ns();
      if (round > 0 && now - pass_start > kAdaptEveryNs) {
        wake();  // straight back for more after the housekeeping
        break;
      }
      const std::uint64_t id = ++pass_id_;
      read_watch_events();
      look.clear();
      if (round == 0 && sweep) {
        look = readers_;
        multi_dev_ = dead_devices_.load(std::memory_order_relaxed) > 0;  // (their streams are not in readers_)
        for (Reader* r : readers_) {
          r->looked_in_pass = id;
          sweep_looks_ += r->done ? 0 : 1;  // as consider() counts them
          multi_dev_ = multi_dev_ || r->dev != readers_.front()->dev;
        }
      } else {
        auto add = [&](Reader* r) {
          if (r->looked_in_pass == id) return;
          r->looked_in_pass = id;
          look.push_back(r);
        };
        for (auto& [permille, r, since] : order) add(r);
        if (round == 0) {
          for (Reader* r : fresh) add(r);
        }
        for (Reader* r : unbelled_) add(r);
      }
      collect_bells(look, id);
      order.clear();
      const bool at_cap = at_cap_.load(std::memory_order_relaxed);
      if (at_cap) note_answers();
      for (Reader* r : look) {
        if (!at_cap || answered_lately(*r, now)) consider(r, now, order);
      }
      if (order.empty()) break;
      std::sort(order.begin(), order.end(),
                [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
      plan_spare(order, now);
      for (std::size_t i = 0; i < order.size(); ++i) {
        auto& [permille, r, since] = order[i];
        guard->spare_until_ns.store(spare_[i], std::memory_order_relaxed);  // (published by the call's token)
        fill(*r, since);
        if (given_up()) return;  // stuck in that read and replaced: nothing here is ours any more
        r->needy_since_ns = 0;
      }
    }
    order.clear();
    const std::uint64_t now = mono_ns();
    if (now - last_adapt_ns_ >= kAdaptEveryNs) {
      last_adapt_ns_ = now;
      adapt_all(now);
    }
    govern_priority(now);
    log_changes(now);
    pass_counter_.fetch_add(1, std::memory_order_release);
  }
}

}  // namespace stemd::io
