// The two OSC dialects, each a table of handlers over the router's shared parts [control].
//
// CrowdstreamDialect: the old Python server's addresses, unchanged (crowdstream.cpp;
// ../shared/spec/crowdstream-osc.md). NativeDialect: stemd's own, under /stemd/ (native.cpp;
// README "OSC reference"). Each registers address → (argument count, handler) in the router's
// HandlerTable; the table checks the count, the handler checks every argument (limits.hpp) and
// changes state only after the last check passed. A handler receives the message with its
// scheduled frame (Call::at) and sends its commands at that frame, or at one it computes from
// it. Thread: the control thread only.
#pragma once

#include "controller.hpp"
#include "router_types.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace stemd::control {

class ArgReader;
class Router;

// The handlers' replies: /fail with a kind and a reason, or /done, each with values (both dialects).
namespace dialect_reply {
inline Reply fail(ErrorKind kind, std::string reason, std::vector<OscArg> values = {}) {
  return Reply::fail(kind, std::move(reason), std::move(values));
}
inline Reply done(std::vector<OscArg> values = {}) { return Reply::done(std::move(values)); }
}  // namespace dialect_reply

class CrowdstreamDialect {
 public:
  explicit CrowdstreamDialect(Router& r);
  void register_into(HandlerTable& t);
  // /load_buffer and /stemd/load: id path [name].
  Reply load_buffer(const Call& c);

 private:
  Reply play_stem(const Call& c);
  Reply play_stem_section(const Call& c);
  Reply stop_stem(const Call& c);
  Reply stem_volume(const Call& c);
  Reply crossfade_levels(const Call& c);
  Reply deck_levels(const Call& c);
  Reply test_tone(const Call& c);
  Reply mixer_cleanup(const Call& c);
  Reply deck_eq(const Call& c);
  Reply deck_eq_all(const Call& c);
  Reply deck_filter(const Call& c);
  Reply set_tempo(const Call& c);
  Reply total_movement(const Call& c);
  Reply set_meter(const Call& c);
  Reply print_clock(const Call& c);
  Reply reset(const Call& c);
  Reply play(const Call& c);
  Reply cue(const Call& c);
  Reply start_group(const Call& c);
  Reply start_group_decks(const bool (&want)[engine::kNumDecks], std::int64_t at);
  Reply fade(const Call& c);
  Reply schedule_c_at(const Call& c);
  Reply dummy(const Call& c);

  Router& r_;
  Controller& ctl_;
  const RouterConfig& cfg_;
  const HandlerTable* table_ = nullptr;
  std::int64_t t0_frame_ = 0;           // /reset's timeline origin (/schedule_c_at counts from it)
  bool warned_start_past_end_ = false;  // /play_stem start ≥ 1: warned once
  struct Armed {                        // a deck /cue'd, waiting for /start_group
    bool armed = false;
    int id = 0;
    std::int64_t start_frame = 0;
    std::uint64_t load = 0;  // which load was cued (Controller::load_serial): a reload disarms
    float volume = 0.8f;     // the player's volume when it starts: /cue's, or a /stem_volume since
  };
  Armed armed_[engine::kNumDecks];
};

class NativeDialect {
 public:
  NativeDialect(Router& r, CrowdstreamDialect& cs);
  void register_into(HandlerTable& t);

 private:
  Reply unload(const Call& c);
  Reply play(const Call& c);
  Reply play_region(const Call& c);
  Reply stop(const Call& c);
  Reply pause_or_resume(const Call& c, bool pause);
  Reply seek(const Call& c);
  Reply volume(const Call& c);
  Reply fade(const Call& c);
  Reply pan(const Call& c);
  Reply rate(const Call& c);
  Reply master(const Call& c);
  Reply deck(const Call& c);
  Reply list(const Call& c);
  Reply voices(const Call& c);
  Reply status(const Call& c);
  Reply notify(const Call& c);
  Reply cookie(const Call& c);
  Reply tone(const Call& c);
  Reply stretch(const Call& c);
  Reply quantize(const Call& c);
  Reply clear_schedule(const Call& c);
  // The optional deck argument i (A–D) of a play: the deck it names, else the id's own
  // (deck_of_id); false with the /fail for anything else.
  bool deck_arg(ArgReader& a, std::size_t i, int id, int& deck, Reply& r);
  // The id's player, or the /fail that says it has none.
  bool playing(int id, VoiceHandle& h, Reply& r);
  // A paged request's [offset] [count], within this packet's answer budget; else the /fail.
  bool page_request(const Call& c, std::int64_t& offset, std::int64_t& count, Reply& r) const;
  // The frame a /stemd/play or /stemd/play_region starts at: its own, or the next quantum.
  std::int64_t start_frame(const Call& c) const;
  // A play's answer, when it waits for the beat grid: how long, and the quantum.
  void add_quantised_wait(Reply& r, std::int64_t at) const;

  Router& r_;
  CrowdstreamDialect& cs_;
  Controller& ctl_;
  const RouterConfig& cfg_;
};

}  // namespace stemd::control
