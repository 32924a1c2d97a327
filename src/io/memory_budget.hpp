// One memory budget for everything a client can make the daemon hold (--max-memory-mb).
//
// Decoded audio (whole files and heads), stream rings and the decoders' per-channel scratch
// buffers are charged here *before* they are allocated; a charge that would exceed the limit is
// refused with a reason naming the budget, and the caller allocates nothing. A Charge gives its
// bytes back when it is destroyed, on whichever thread drops the last reference to what it paid
// for. held() is what the status reports as memory_bytes. Rings are charged their own size; the
// free part of the 2 MiB huge-page chunks they are carved from (ring_memory.hpp) is resident too
// and counts against the limit in every check, so a client opening streams of many ring sizes
// (each size its own chunk) cannot hold more than the limit plus one chunk.
// Threads: any ([control], the opener threads, [loader]); lock-free but for ring_memory's
// statistics (a mutex). Never [audio].
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdint>
#include <memory>
#include <string>

#include "stemd/ring_memory.hpp"

namespace stemd::io {

class MemoryBudget {
 public:
  explicit MemoryBudget(std::int64_t limit_bytes = 0) noexcept : limit_(limit_bytes) {}
  // Takes `bytes` if they fit (limit 0 = unlimited). On refusal sets `error` and takes nothing.
  bool try_take(std::int64_t bytes, std::string& error) noexcept {
    if (bytes <= 0) return true;
    std::int64_t cur = held_.load(std::memory_order_relaxed);
    const auto slack = limit_ > 0 ? static_cast<std::int64_t>(ring_memory::stats().slack_bytes()) : 0;
    for (;;) {
      if (limit_ > 0 && cur + slack + bytes > limit_) {
        error = describe_refusal(bytes, cur + slack);
        return false;
      }
      if (held_.compare_exchange_weak(cur, cur + bytes, std::memory_order_relaxed)) return true;
    }
  }
  void give_back(std::int64_t bytes) noexcept {
    if (bytes > 0) held_.fetch_sub(bytes, std::memory_order_relaxed);
  }
  std::int64_t held() const noexcept { return held_.load(std::memory_order_relaxed); }
  std::int64_t limit() const noexcept { return limit_; }

 private:
  std::string describe_refusal(std::int64_t bytes, std::int64_t held) const {
    auto mb = [](std::int64_t b) {
      char s[32];
      std::snprintf(s, sizeof s, "%.1f", static_cast<double>(b) / (1024.0 * 1024.0));
      return std::string(s);
    };
    return "memory budget (" + mb(held) + " MiB held of " + mb(limit_) + " MiB, --max-memory-mb): " + mb(bytes) +
           " MiB more refused";
  }
  const std::int64_t limit_;
  std::atomic<std::int64_t> held_{0};
};

// Bytes taken from a budget, given back on destruction. Move-only. Keeps the budget alive (a
// decoded copy may outlive the controller that loaded it, e.g. in a retiring voice).
class Charge {
 public:
  Charge() = default;
  // Takes `bytes` from `budget` (null: nothing is counted and it always succeeds).
  bool take(std::shared_ptr<MemoryBudget> budget, std::int64_t bytes, std::string& error) {
    reset();
    if (!budget) return true;
    if (!budget->try_take(bytes, error)) return false;
    budget_ = std::move(budget);
    bytes_ = bytes;
    return true;
  }
  // Gives back part of it (a buffer that shrank).
  void shrink_to(std::int64_t bytes) noexcept {
    if (budget_ && bytes < bytes_) {
      budget_->give_back(bytes_ - bytes);
      bytes_ = bytes;
    }
  }
  void reset() noexcept {
    if (budget_) budget_->give_back(bytes_);
    budget_.reset();
    bytes_ = 0;
  }
  std::int64_t bytes() const noexcept { return bytes_; }
  ~Charge() { reset(); }
  Charge(Charge&& o) noexcept : budget_(std::move(o.budget_)), bytes_(o.bytes_) { o.bytes_ = 0; }
  Charge& operator=(Charge&& o) noexcept {
    if (this != &o) {
      reset();
      budget_ = std::move(o.budget_);
      bytes_ = o.bytes_;
      o.bytes_ = 0;
    }
    return *this;
  }
  Charge(const Charge&) = delete;
  Charge& operator=(const Charge&) = delete;

 private:
  std::shared_ptr<MemoryBudget> budget_;
  std::int64_t bytes_ = 0;
};

}  // namespace stemd::io
