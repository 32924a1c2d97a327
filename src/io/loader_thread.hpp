// The loader thread: keeps every streaming voice's ring filled from disk.
//
// Like Ardour's butler, one thread services every stream, emptiest ring first, and is woken by
// the audio callback (a semaphore post, real-time safe) whenever rings were drained, with a short
// timeout as a safety net. It is never *told* what to read by messages that could be lost: a
// ring's doorbell bit (below) stays set until the loader has answered it, and every 100 ms it
// looks at every ring, so no refill request can be dropped (scsynth's failure mode past ~2,000
// streams).
//
// Adaptive prefetch: the loader measures, per source, how long a stream that needs data waits
// until its read has landed in the ring (the wait behind other streams' reads plus the read
// itself), and keeps each ring filled to cover mean + 3σ of it plus the audio period and the
// wake-up interval. A target grows at once when the estimate rises or a ring is found empty (the
// voice underran: the target doubles), and shrinks slowly (time constant 20 s, after 10 s without
// growth) when the disk is steady. Memory: a ring's capacity is allocated once, when its stream
// is created, and never reallocated under the audio thread: ring_frames (--ring-ms) normally, so
// a steady disk costs what a fixed ring did, or 1.5 × the source's current target when its
// observed jitter asks for more, up to ring_max_frames (and while all rings together stay under
// 64 MiB: thousands of voices keep ring_frames). A running stream's target adapts within
// its capacity; a larger need beyond that shows in the next streams of the source. Target changes
// are logged by this thread at most once a second. Refills: a ring whose target is at least half
// its capacity and whose estimated wait is at most a quarter of it (the steady state at the
// daemon's defaults) is refilled when down to half, in one read of its whole free span — few large
// reads; otherwise chunk-sized reads up to the target, each one a sample of the disk's wait.
// With ring_min = ring_max = ring_frames the target is fixed at ring_frames: the ring is kept
// full, as before (the daemon's defaults are adaptive: --ring-min-ms is half of --ring-ms).
//
// Doorbells: a pass does not walk every ring (at thousands of voices each one a cache miss on
// memory the audio thread wrote: a third of the loader's CPU). Each ring has a bit in the loader's
// doorbell words (SampleRing::set_doorbell); the consumer sets it when the fill drops to the ring's
// low-water mark, and a pass reads the words and looks only at those rings, the new ones, and
// those it has just filled. Every kAdaptEveryNs (100 ms) a pass still looks at every ring — the
// safety net. Past kBellSlots streams, the rest are looked at in every pass, as before.
//
// Files rewritten under a stream: a file rewritten in place in another format (or length) while a
// voice streams it must not play its new bytes as the old format's frames (full-scale noise). The
// stream's reader compares the file's header with the one it opened (SoundFile::header_unchanged,
// one pread) — but only after the file was written to: every stream's file is watched with
// inotify (IN_MODIFY, through the open descriptor, so a rename over the path does not matter),
// each pass reads the watch's events, and a stream whose file was written checks its header
// before it publishes its next read. A header check per read cost one more syscall per refill
// (≈ 1.6 µs: 7 % of the daemon at 1024 voices). The event comes when the write() returns, so reads
// made while a write is under way are published unchecked: at most what the ring holds (0.4 s at
// the defaults) of the new bytes is heard before the stream ends. When no watch can be had
// (inotify unavailable or its watch limit reached), that stream checks its header at every read.
//
// Priority: SCHED_FIFO below the audio thread (--loader-priority; capped one step below the audio
// thread's once that runs, cap_rt_priority()), so other programs cannot starve the rings — but never as a CPU hog: over
// half a core in a 100 ms window and it runs at normal scheduling until it needs less than a quarter
// (LoaderConfig::rt_cpu_high; loader_adapt.cpp).
//
// Reads that do not return: one thread reads for every stream, so a read of a file on a share (or
// a disk) that stopped answering would starve every voice, those on other disks too. Each
// blocking call on a stream's file (a read, a header check, a seek) is made under the thread's
// ReadGuard (loader_guard.cpp): a watchdog thread, waking at the current call's deadline, gives a
// call past it up — the thread will touch nothing of the loader again, and the stream it was
// reading is its own from then on — and starts a new loader thread with every other stream. The
// deadline (give_up_after): with one file system, LoaderConfig::stuck_read_ms; with streams on
// several, half the time until the first ring of another file system runs dry (plan_spare: the
// emptiest still to be read in the round, ring/2 for the others), at least kMinGiveUpNs — so a
// share that is merely slower than the rings (reads of 1.5 s, never "stuck") delays only its own
// streams. Streams of the same file system (st_dev) are not read while that call has not returned
// (they would only get stuck in turn): their voices underrun, as the given-up one's does. When
// the call returns, the thread leaves and its stream is taken back: what the read brought is
// published (the thread checks the header first when the read had to; publish_landed), else it is
// read again from its last published frame after a back-off — a slow share advances at its own
// pace, one that comes back plays on. A stream the engine lets go meanwhile is freed by whichever
// comes last, the release or the return; a call that never returns keeps its thread and its ring:
// at most one per file system that stopped answering, bounded by kMaxStuckThreads (then the last
// thread reads only file systems that answered within kAnsweredNs). Why not one reader thread per
// file system: docs/architecture.md, "Slow and dead file systems".
//
// Threads:
//   [control]  create_stream(), release(), stats()
//   [loader]   run() — owns every registered stream's file reader
//   [watchdog] watchdog() — takes over from a stuck loader thread (under thread_mu_)
//   [audio]   wake() — via Engine::set_loader_wakeup
#pragma once

#include "source.hpp"
#include "stemd/stream.hpp"

#include <semaphore.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace stemd::io {

struct LoaderConfig {
  std::int64_t ring_frames = 24000;    // per streaming voice (0.5 s at 48 kHz)
  std::int64_t chunk_frames = 8192;    // largest single read
  std::int64_t prefill_frames = 8192;  // decoded synchronously when a stream starts past the head
  int wake_timeout_ms = 10;            // the shortest sleep_ms() with streams; part of a ring's target
  // Adaptive prefetch bounds for a ring's fill target and capacity (0 = ring_frames: fixed).
  std::int64_t ring_min_frames = 0;
  std::int64_t ring_max_frames = 0;
  std::int64_t period_frames = 0;  // the audio period, part of what a ring must cover
  int sample_rate = 48000;         // rate of the *_frames values (times in logs and stats)

  // [loader] The longest sleep between passes, in ms of wall time. The audio thread wakes the
  // loader at every callback that consumed (sem_post), so with streams this only fires when the
  // callbacks stop, and nothing is consumed then: two periods (at least wake_timeout_ms; with a
  // 10 ms timeout every pass over every reader came 2–3 times a period). With no stream, 1 s:
  // a new stream and stop() wake the loader.
  long sleep_ms(bool any_stream) const noexcept {
    if (!any_stream) return 1000;
    const long two_periods = sample_rate > 0 ? static_cast<long>(2000 * period_frames / sample_rate) : 0;
    return std::max<long>(wake_timeout_ms, two_periods);
  }
  double shrink_hold_s = 10.0;  // a target shrinks only this long after it last grew,
  double shrink_tau_s = 20.0;   // then toward the estimate with this time constant
  bool int16_rings = true;      // 16-bit stereo files: int16 rings, read straight into them
  // > 0: the loader runs SCHED_FIFO at this priority (below the audio thread's, so it never
  // delays a callback, but ahead of every normal thread: other programs' work cannot starve the
  // rings). 0, or not permitted (no RLIMIT_RTPRIO): normal scheduling.
  int rt_priority = 0;
  // A real-time loader must never hold a CPU. A SCHED_FIFO thread that keeps running stalls every
  // real-time thread on its CPU — the audio callback too, whatever its priority — for ~50 ms when
  // the kernel's RT throttling (or its fair server) steps in: measured 53.6 ms on this VM's 6.18
  // kernel (docs/benchmarks.md, sixth round). So the loader watches its own CPU time (its thread's
  // clock) over each window of kAdaptEveryNs (100 ms of wall time): above rt_cpu_high of a core it
  // drops to normal scheduling (nice rt_fallback_nice when permitted); once a window is below
  // rt_cpu_low it returns to SCHED_FIFO. Fractions of one core; only with rt_priority > 0.
  double rt_cpu_high = 0.5;
  double rt_cpu_low = 0.25;
  int rt_fallback_nice = -10;
  // A read (or seek) of one stream's file that has not returned after this long, in ms of wall
  // time (a share or a disk that stopped answering), is given up: its stream waits for it and a
  // new loader thread takes over every other stream, so one dead share does not starve the voices
  // that read other disks ("Reads that do not return" above). With streams on several file
  // systems a call is given up sooner: when the other file systems' rings cannot wait for it.
  // 0: never.
  int stuck_read_ms = 2000;
};

struct LoaderStats {
  std::uint64_t reads = 0;
  std::uint64_t frames_read = 0;
  std::uint64_t read_errors = 0;  // streams ended by an I/O or decode error
  std::uint64_t truncated = 0;    // streams whose file ended before its header said
  std::uint64_t loop_wraps = 0;
  std::uint64_t header_checks = 0;  // reads of a file's header: once a stream opened, then after writes to it
  std::uint64_t passes = 0;
  std::size_t streams = 0;
  // Adaptive prefetch, over the streams registered at the last update (≈ 10 per second).
  std::uint64_t rings_ran_dry = 0;  // a ring found empty while its voice played (an underrun)
  std::uint64_t target_grows = 0;
  std::uint64_t target_shrinks = 0;
  double target_ms_min = 0, target_ms_max = 0, target_ms_mean = 0;  // fill targets
  double wait_ms_mean = 0, wait_ms_sd = 0;                          // worst source's service time
  double read_ms_max = 0;                                           // slowest read lately (decays ≈ 1 s)
  std::uint64_t ring_bytes = 0;                                     // capacity of every ring
  int rt_priority = 0;             // the SCHED_FIFO priority the loader runs at now (0: normal scheduling)
  std::uint64_t rt_demotions = 0;  // times it dropped to normal scheduling, using too much CPU
  double cpu_fraction = 0;         // of one core, over the last window (its thread's CPU clock)
  // What the passes cost (≈ 10 updates a second): rings looked at, and doorbells answered.
  std::uint64_t ring_looks = 0;
  std::uint64_t sweep_looks = 0;  // of which: the every-100-ms look at every ring (time-driven)
  std::uint64_t bells = 0;
  // Reads that did not return within stuck_read_ms (each ended its stream and moved the other
  // streams to a new loader thread), and the loader threads still stuck in such a read now.
  std::uint64_t stuck_reads = 0;
  int stuck_threads = 0;
  // How long the current loader thread's call on a file has lasted, in ms of wall time (0: in none).
  double read_ms_now = 0;
};

class LoaderThread {
 public:
  explicit LoaderThread(const LoaderConfig& cfg);
  ~LoaderThread();
  LoaderThread(const LoaderThread&) = delete;
  LoaderThread& operator=(const LoaderThread&) = delete;

  void start();  // [control]
  void stop();  // [control] joins (a thread stuck in a read is given up instead); deletes every stream still registered

  // [control] A stream of `src` delivering frames from `from_frame` on. Frames the voice plays
  // before that come from the source's head. When from_frame is past the head, the first
  // prefill_frames are decoded before this returns, so the voice can start at once.
  // Returns null and sets `error` (the file's reason) on failure.
  Stream* create_stream(const Source& src, std::int64_t from_frame, bool loop, std::string& error);
  // With a region: reads [from_frame, region_end), then wraps to region_start while looping,
  // `passes` times in all (0 = forever); region_end 0 = the file's end.
  Stream* create_stream(const Source& src, std::int64_t from_frame, bool loop, std::int64_t region_start,
                        std::int64_t region_end, std::uint32_t passes, std::string& error);

  // The same in three steps, so that the slow one (opening the decoder, seeking, the prefill:
  // reads of the file) can run on another thread while the control thread goes on answering:
  //   plan_stream()  [control]     decides the ring (format, capacity) from the loader's state;
  //   open_stream()  [any thread]  charges the ring to the budget, opens, seeks and prefills —
  //                                it touches nothing of the loader, so it may outlive it;
  //   adopt()        [control]     hands the opened stream to the loader (create_stream's result).
  // An Opened dropped without adopt() is freed with everything it holds (its charge given back).
  struct StreamRequest {
    std::int64_t from_frame = 0;
    bool loop = false;
    std::int64_t region_start = 0, region_end = 0;  // region_end 0: the file's end
    std::uint32_t passes = 0;                       // 0 = forever
  };
  struct StreamPlan {
    bool int16 = false;
    std::int64_t target = 0, capacity = 0, prefill_frames = 0;
    int sample_rate = 48000;
  };
  class Reader;
  class Opened {
   public:
    Opened();
    ~Opened();
    Opened(const Opened&) = delete;
    Opened& operator=(const Opened&) = delete;
    // Tests: the stream counts as a file on file system `dev` (st_dev), to stand for many shares
    // on one disk. (Its file is read as usual.)
    void set_device_for_test(std::uint64_t dev);

   private:
    friend class LoaderThread;
    std::unique_ptr<Reader> reader_;
    bool ended_ = false;  // the prefill reached the end of the file or region
  };
  StreamPlan plan_stream(const Source& src) const;
  static std::unique_ptr<Opened> open_stream(const StreamPlan& plan, const Source& src, const StreamRequest& req,
                                             std::string& error);
  Stream* adopt(std::unique_ptr<Opened> opened);

  // [control] A stream the engine retired: the loader stops reading it and deletes it.
  void release(Stream* s);

  // [any thread, real-time safe] Ask for a refill pass now.
  void wake() noexcept { sem_post(&wake_); }
  static void wake_cb(void* self) noexcept { static_cast<LoaderThread*>(self)->wake(); }

  // Blocks until the loader has finished one full pass started after this call (tests, render).
  void wait_idle();

  LoaderStats stats() const;
  const LoaderConfig& config() const noexcept { return cfg_; }
  // [main] Keeps the loader's SCHED_FIFO priority at most `max` (0: normal scheduling), so that it
  // stays below the audio thread's (app/rt_priority.hpp). The loader thread applies it at its next
  // pass (woken now); a loader thread started later (after a stuck read) starts under it.
  void cap_rt_priority(int max) noexcept {
    rt_cap_.store(max, std::memory_order_relaxed);
    wake();
  }
  static constexpr int kNoRtCap = 1 << 30;
  // [control] The loader thread (after start()), for CPU affinity or scheduling tests.
  std::thread::native_handle_type native_handle() { return thread_.native_handle(); }

 private:
  struct ReadGuard;  // one per loader thread: the blocking call it is in (loader_guard.cpp)
  // A hard bound on given-up threads whose call has not returned. The streams of a file system
  // with such a call are not read, so there is at most one per dead file system; this only bounds
  // a machine with that many of them (see give_up: what happens then).
  static constexpr int kMaxStuckThreads = 64;
  static constexpr std::uint64_t kMinGiveUpNs = 50'000'000;  // never give a call up sooner (ms of wall time)
  void run(const std::shared_ptr<ReadGuard>& guard);
  void watchdog();                                                             // [watchdog]
  std::uint64_t give_up_after(const ReadGuard& g, std::uint64_t since) const;  // [watchdog]
  bool publish_landed(Reader& r, std::uint64_t now);                           // [loader] under mutex_
  // [loader] At kMaxStuckThreads (at_cap_) this thread cannot be replaced: it reads only the file
  // systems that have answered a read within the last kAnsweredNs (answered_, per round).
  static constexpr std::uint64_t kAnsweredNs = 1'000'000'000;
  void note_answers();
  bool answered_lately(const Reader& r, std::uint64_t now) const;
  bool give_up(ReadGuard& g, std::uint64_t now, std::uint64_t after_ns, bool replace);  // under thread_mu_
  void take_back_orphans();                                                             // [loader] under mutex_
  bool on_dead_device(const Reader& r);                                                 // [loader]
  void release_orphan(Reader* r);                                                       // [loader]/[control, stop]
  // [loader] Makes `call` (a blocking call on r's file) under this thread's guard. False: the
  // thread was given up meanwhile — it returns at once from every caller, touching nothing of
  // this LoaderThread (given_up() stays true on it).
  template <class F>
  static bool guarded(Reader& r, F&& call);
  static ReadGuard*& this_guard() noexcept;   // the calling loader thread's (thread_local)
  static bool& given_up() noexcept;           // the calling loader thread was given up (thread_local)
  static bool given_up_meanwhile() noexcept;  // in a guarded call: given up while in it
  void set_priority();                        // [loader]
  void govern_priority(std::uint64_t now);    // [loader] see LoaderConfig::rt_cpu_high
  int set_fifo(bool on);                      // [loader] on: SCHED_FIFO at rt_wanted() (normal when ≤ 0)
  int rt_wanted() const noexcept { return std::min(cfg_.rt_priority, rt_cap_.load(std::memory_order_relaxed)); }
  void follow_cap();  // [loader] applies a new cap_rt_priority()
  // One read (and, where it reached the loop's end, the reads after the wrap); false when the
  // reader needs nothing.
  bool fill(Reader& r, std::uint64_t needy_since_ns);
  bool fill_once(Reader& r, std::uint64_t needy_since_ns, bool* wrapped);
  bool fill_cached(Reader& r, std::int64_t n, std::int64_t fill);
  static constexpr int kWrapsPerFill = 4;
  bool end_of_data(Reader& r);
  void adapt(Reader& r, std::uint64_t now_ns, bool dry);  // [loader] move r's fill target
  void adapt_all(std::uint64_t now_ns);                   // [loader] every reader, ≈ 10 per second
  void log_changes(std::uint64_t now_ns);                 // [loader] rate-limited info line
  using Order = std::vector<std::tuple<std::uint32_t, Reader*, std::uint64_t>>;  // fill ‰, reader, needy since
  void plan_spare(const Order& order, std::uint64_t now);                        // [loader] see spare_
  bool take_pending(std::vector<Reader*>& fresh);                                // [loader]
  void consider(Reader* r, std::uint64_t now, Order& order);                     // [loader]
  bool watch(Reader& r);                                                         // [loader] false: given up (guarded)
  void unwatch(Reader& r);                                                       // [loader]
  void read_watch_events();                                                      // [loader]
  bool adaptive() const noexcept { return min_frames_ < cfg_.ring_frames || max_frames_ > cfg_.ring_frames; }

  LoaderConfig cfg_;
  std::int64_t min_frames_ = 0;  // effective bounds (config 0 → ring_frames)
  std::int64_t max_frames_ = 0;
  std::int64_t max_read_frames_ = 0;
  std::atomic<std::int64_t> hint_frames_{0};  // largest target lately: new sources start there
  std::atomic<std::int64_t> ring_bytes_{0};   // capacity of every registered ring
  sem_t wake_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  // The loader thread's succession (loader_guard.cpp): thread_ and guard_ change under thread_mu_.
  mutable std::mutex thread_mu_;  // (stats() reads the current call's age under it)
  std::condition_variable watch_cv_;
  std::thread watchdog_;
  std::shared_ptr<ReadGuard> guard_;               // the current loader thread's
  std::vector<std::shared_ptr<ReadGuard>> stuck_;  // given-up threads whose call has not returned
  std::vector<Reader*> orphans_;                   // their streams, until the engine releases them
  bool stuck_cap_logged_ = false;
  std::atomic<bool> at_cap_{false};
  std::vector<std::pair<std::uint64_t, std::uint64_t>> answered_;  // [loader] file system, its latest read
  std::atomic<int> dead_devices_{0};  // given-up calls not yet returned (consider() checks streams' devices then)

  mutable std::mutex mutex_;  // guards the pending lists and stats_ — never touched by [audio]
  std::vector<Reader*> pending_add_;
  std::vector<Stream*> pending_remove_;
  LoaderStats stats_;
  std::atomic<std::uint64_t> pass_counter_{0};

  // Doorbells: one bit per stream. Slots are handed out by adopt() and given back when the
  // loader deletes the stream (free_slots_ under mutex_); slot_reader_ is [loader] only.
  static constexpr std::uint32_t kBellSlots = 16384;
  static constexpr std::uint32_t kNoSlot = ~0u;
  std::unique_ptr<std::atomic<std::uint64_t>[]> bells_;
  std::vector<std::uint32_t> free_slots_;
  std::vector<Reader*> slot_reader_;
  void collect_bells(std::vector<Reader*>& out, std::uint64_t pass);  // [loader]
  void publish_low_water(Reader& r) noexcept;                         // [loader]/[control] before adopt

  // [loader] only
  std::vector<Reader*> readers_;
  bool multi_dev_ = false;            // readers_ span more than one file system (at the last sweep)
  std::vector<std::uint64_t> spare_;  // per read of a round: ReadGuard::spare_until_ns (plan_spare)
  std::vector<Reader*> unbelled_;     // streams past kBellSlots: looked at in every pass
  std::vector<Reader*> to_watch_;     // new or taken-back streams, watched once mutex_ is let go (take_pending)
  std::vector<Reader*> doomed_;       // released streams, deleted once mutex_ is let go (take_pending)
  // Writes to the streams' files (inotify, IN_NONBLOCK; -1: none, every read checks its header):
  // the watch descriptor of each watched file and how many streams share it (one per inode).
  int inotify_fd_ = -1;
  std::unordered_map<int, int> watch_refs_;
  bool watch_limit_logged_ = false;
  std::uint64_t last_sweep_ns_ = 0;
  std::uint64_t pass_id_ = 0;
  std::uint64_t last_adapt_ns_ = 0;
  // The CPU governor (govern_priority): the window's start, wall and thread CPU clocks (ns).
  std::uint64_t gov_wall_ns_ = 0, gov_cpu_ns_ = 0;
  bool fifo_ = false, demoted_ = false;
  // cap_rt_priority(): the highest SCHED_FIFO priority allowed (below the audio thread's), and the
  // cap the loader thread last applied [loader].
  std::atomic<int> rt_cap_{kNoRtCap};
  int seen_cap_ = kNoRtCap;
  std::uint64_t demotions_ = 0, demote_logged_ns_ = 0;
  std::uint64_t last_log_ns_ = 0;
  double read_max_s_ = 0;   // slowest read since the last adapt_all
  double read_peak_s_ = 0;  // and a decaying peak of it (stats)
  std::uint64_t dry_count_ = 0, grow_count_ = 0, shrink_count_ = 0, looks_ = 0, sweep_looks_ = 0, bells_answered_ = 0;
  struct Change {  // the largest target change not yet logged
    std::string path;
    std::int64_t from = 0, to = 0, capacity = 0;
    double wait_mean_s = 0, wait_sd_s = 0;
    bool dry = false, capped = false;
    int more = 0;
  } change_;
  bool change_pending_ = false;
};

}  // namespace stemd::io
