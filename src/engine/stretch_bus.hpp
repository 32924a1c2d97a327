// A stretch bus: one time-stretch for many voices. Private to src/engine (stretch_bus.cpp: joining,
// leaving, rendering). Thread: [audio], as the engine members it serves; made in the Engine's
// constructor [control].
//
// Why: Rubber Band costs ≈ 650 ns per frame per stretcher (docs/benchmarks.md), and in the
// crowdstream dialect /set_tempo gives every player one tempo, so the stems of a deck share it.
// The voices of a deck with the same tempo and the same source rate are mixed — each with its
// own gain, pan and ramps, at the source rate — into the bus's input; the bus runs one Stretcher
// (made for that rate) and then one Resampler (source rate → output rate; none when the rates
// are equal), and its output goes into the deck's bus, before the deck's EQ and fader as a
// voice's would. N voices cost one stretch, not N. A bus's output is bit-identical to one
// standalone Stretcher + Resampler fed the pre-mixed sum (tests/unit/stretch_bus_test.cpp).
//
// Who joins (bus_rule.hpp: the one rule, which the control thread's budget plans with too): a voice with tempo ≠ 1 at
// rate 1 (its ratio is only source rate / output rate) on a running bus of its deck (shared: of any deck; a voice on
// the direct bus never) with its tempo and source rate, else on an idle bus made for its rate. Everything else — no bus
// free, another rate, a voice at rate ≠ 1 — takes a stretcher of its own as before (the control thread budgets one per
// stretched voice, so one is always there: the way back from a bus never fails for want of a stretcher). So
// --max-stretched-voices still bounds the stretched voices; while they ride buses the idle
// stretchers cost memory (≈ 2 MB each), not CPU.
// Those own stretchers prime on the audio thread (about two blocks of extra work each), at most
// EngineConfig::stretch_primes_per_callback per callback; a voice past that starts silent on the
// grid and is heard a callback or more later (stretcher.hpp, kVoiceDeferred). A voice that took
// its own stretcher goes back onto a running bus once that bus has its tempo ("Rejoining" below).
//
// Timing (source frames = the files' frames; output frames = the device's; ρ = tempo × source
// rate / output rate source frames per output frame; L = the bus's lookahead, the source frames
// it has pulled but not yet played, ≈ the stretcher's window plus the resampler's read-ahead):
//   - An idle bus is reset and primed exactly as a voice's own stretcher: start compensated, the
//     first voice's first frame is heard at its start frame. Voices that join in the same block
//     (a group start, or every player at a /set_tempo) land together, to the frame.
//   - Joining a *running* bus skips ahead: the voice goes into the bus's input L source frames
//     on (fading in), so from the moment the bus plays it — L / ρ output frames after it joined —
//     it is exactly where it would be had it started at its start frame: on the beat grid with
//     the voices already playing. A voice that *starts* on a running bus is handed over (below)
//     so that its first L / ρ output frames — its attack — are not lost; one that cannot be, or
//     that joins mid-block at the bottom of a fade (a tempo switch), loses them as before (it was
//     silent there anyway in the second case).
//   - The handover (stretch_bus_handover.cpp): a voice started on a running bus plays its first
//     L / ρ output frames through a stretcher of its own (a pool Stretcher at the output rate
//     behind a pool Resampler from the bus's rate, as a voice with its own stretcher plays),
//     primed at once, so its attack is heard on the grid to the frame. Its source is read once,
//     into a tap (a ring of kTapFrames): the own stretcher reads the tap from the voice's start
//     frame, the bus from L frames on. When the bus's output reaches the voice, the bus's part
//     fades in (at its input, kHandoverFadeMs × ρ source frames) while the own stretcher fades out
//     (output frames): an equal-power crossfade (both carry the same music on the same grid, but
//     not the same phases: each stretcher has its own history, so equal gain dips more); then
//     the stretcher and resampler go back to the pool and the tap goes once the bus has read it
//     all. Voices of one deck that start in the same block share one own stretcher (a group): one
//     prime, however many stems a /start_group starts. The prime counts against
//     EngineConfig::stretch_primes_per_callback; with no prime left in the callback, no
//     stretcher or resampler to spare (one is kept free for each bus member: leaving a bus never
//     fails), or no tap free, the voice joins as before — its attack lost — and
//     Metrics::stretch_joins_lost counts it (stretch_handovers counts the others). On the own
//     path a member's gain and pan act at once (not L late), and a stop, pause, seek or leave
//     fades the own path out over the declick time.
//   - Commands on a member (gain, pan, fades, stop, pause) act at the bus's input, in source
//     frames: they are heard L / ρ output frames later, and a fade of F frames lasts F / ρ
//     output frames. A seek skips ahead by L at the new position (on the grid, as a join).
//   - Position (/stemd/status, telemetry): the file frame being heard, pos − L.
//   - A tempo change: every member has the new tempo (/set_tempo) → the bus glides to it (the
//     library's own glide). /set_tempo's per-voice commands may land in two callbacks (the
//     control thread sends them while callbacks run), so the bus keeps its tempo while its
//     members disagree for up to one callback. Members whose tempo still differs from the
//     others' after that, or that get a rate ≠ 1, leave: a fade to silence at the input, then L / ρ output frames of
//     silence while the bus plays out what it holds of them, then their own stretcher fades in at the frame the bus
//     would have reached — still on the grid.
//     A bus compares a joining voice's tempo with its members' when they all agree (bus_tempo_now):
//     it takes their new tempo only after the voices have rendered, and a voice switching into the
//     stretch in that block (tempo 1 before) must find it. A play still scheduled follows tempo
//     (and rate) commands: a /start_group at a time to come starts at the tempo of then.
//   - Rejoining (bus_rejoin, stretch_bus_handover.cpp): a voice on a stretcher of its own (it left
//     during a tempo change, or started at a tempo no running bus had) whose tempo, rate 1 and source
//     rate a running bus it may join has again — the bus at that tempo and its members agreeing —
//     goes back onto it as a handover does, at the top of a block: its own stretcher and resampler
//     become the group's, carrying on with their history (no prime), read from a tap from the
//     voice's next frame; the bus reads the tap from L − L_own on (L_own: what its own path has
//     pulled and not played, in source frames; when L_own > L, after L_own − L frames of silence), so
//     both are heard at the same source frame; once the bus plays it (max(L, L_own) / ρ output
//     frames on), the equal-power crossfade, then the stretcher and resampler go back to the pool.
//     Its gain and pan stay after the stretch on its own path, as they were (a gain change would
//     otherwise jump by what the stretcher held). One per callback (Metrics::stretch_rejoins);
//     only a steady voice (playing, no fade or gain/pan ramp in flight, its stretcher primed); at
//     tempo 1 too (a voice keeps the stretcher it has at tempo 1). With no running bus at its
//     tempo, a second such voice (same rate and tempo, same deck unless shared) found in the same
//     callback re-forms one on an idle bus: started afresh (start compensated, L = 0), it reads
//     L_own frames of silence first, so it is heard at the voice's own path's frame; the first
//     voice then rejoins it. A voice alone keeps its own stretcher (nothing to share).
//   - End, stop, pause happen at the input; the bus plays out its tail (L / ρ output frames)
//     after the last member has gone, then goes idle (reset when it next starts).
//
// Shared buses (--stretch-bus-share, EngineConfig::stretch_bus_share; off by default): a bus
// takes the voices of *every* deck at its tempo and source rate, so the crowdstream workload (two
// decks, one /set_tempo) costs one stretch, not one per deck. Each deck's members are mixed into
// a deck input of their own, which goes through that deck's EQ and fader — copies made for the
// source rate (StretchBus::eq, ::gain) — and the decks' sums are added, stretched and resampled
// once, into the master (through the direct bus: no deck EQ or fader after the stretch). What
// differs from a per-deck bus:
//   - The deck's fader and EQ act at the bus's input: a /deck_volume, crossfade, /deck_eq or kill
//     is heard L / ρ output frames (≈ 45 ms at 1024-frame pulls) late on the deck's bus voices,
//     while its voices off the bus (unstretched, or on a stretcher of their own) hear it at once.
//     A DJ expects a fader cut or an EQ kill on the beat, so this is opt-in, for budgets that need
//     the stretch halved (a Pi 4 running the crowdstream workload), not the default.
//   - A deck that starts while another deck's voices play joins their running bus: on the grid,
//     but its first L / ρ output frames (≈ 45 ms: the attack of a track started at its top) are
//     skipped and it fades in over the declick time, where a bus of its own would start with it,
//     to the frame. Voices of both decks started in one block (a /start_group) land together.
//   - The copies get every deck command as it is applied, with ramp lengths in source frames
//     (output frames × ρ at that moment): a glide lasts as long as the deck's own, heard L later.
//     A bus that starts takes the deck's current gains at once (a ramp in flight lands on its
//     target at once, the EQ's dry/wet too). The EQ's own timings (the 10 ms dry → filtered fade,
//     the 250 ms flat hold, the 30 ms bypass fade) are in source time: × 1 / tempo when heard.
//   - The curve design is the same (DeckEq with the deck's crossovers and slope) at the source
//     rate: the crossovers sit at the same frequencies (the SVF sections are prewarped to them);
//     the bilinear transform bends the bands differently only towards Nyquist (22.05 vs 24 kHz).
//   - Deck meters (web monitor) count the bus part at its input: L early, in source frames.
#pragma once

#include "deck_eq.hpp"
#include "engine_voice.hpp"
#include "stemd/ramp.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace stemd::engine {

struct Engine::StretchBus {
  std::unique_ptr<Stretcher> st;  // made for `rate`
  std::unique_ptr<Resampler> rs;  // rate → output rate; null when they are equal
  int rate = 0;                   // the source rate this bus serves
  std::uint8_t index = 0;         // its place in buses_ (VoiceTelemetry::bus: index + 1)
  double ratio = 1.0;             // rate / output rate
  bool running = false;
  std::uint8_t deck = 0;
  double tempo = 1.0;
  std::vector<VoiceId> members;  // [0, count): capacity max_voices, reserved
  std::uint32_t count = 0;
  std::int64_t tail_left = 0;     // output frames to play after the last member left
  std::uint64_t split_since = 0;  // 1 + the callback its members' tempi first disagreed in; 0 = they agree
  double split_sig = 0;           // the disagreeing tempi's signature then (a new one restarts the wait)
  Engine* engine = nullptr;       // for the pull callbacks
  // Shared (EngineConfig::stretch_bus_share; see "Shared buses" above): members of every deck;
  // `deck` is unused. Each deck's part passes eq[d] and gain[d], copies of the deck's EQ and fader
  // made for `rate`, fed the same commands (ramp lengths × ρ, so a glide lasts as long as heard).
  bool shared = false;
  DeckEq eq[kNumDecks];
  Ramp gain[kNumDecks];
};

// A voice being handed over onto a running bus (see "The handover" above): the tap its source is
// read into once, and the two cursors that read it. Tap frame 0 is the voice's position when it
// joined. Pool of kHandoverTaps, made with the buses.
struct Engine::Handover {
  static constexpr std::int64_t kTapFrames = 16384;  // source frames; > L + two pulls
  std::unique_ptr<float[]> ring;                     // kTapFrames stereo frames
  std::int64_t filled = 0;                           // tap frames fetched from the voice
  std::int64_t own = 0;                              // the own stretcher's next tap frame
  std::int64_t bus = 0;                              // the bus's next tap frame (starts at the skip, L)
  bool own_on = false;                               // the own path still reads the tap
  bool bus_on = false;                               // the bus still reads through the tap (until it has caught up)
  bool sealed = false;                               // the source moved (seek): the tap holds all the own path gets
  Ramp own_env{1.0f};                                // the own path's envelope, in source frames
  HandoverGroup* group = nullptr;
  bool used = false;
};

// The own stretcher of the voices of one deck that joined a running bus in one block.
struct Engine::HandoverGroup {
  static constexpr std::uint32_t kMembers = 8;
  Stretcher* st = nullptr;  // a pool stretcher (output rate)
  Resampler* rs = nullptr;  // the bus's rate → the output rate; null when they are equal
  StretchBus* bus = nullptr;
  std::uint8_t deck = 0;
  std::int64_t frame = 0;    // the engine frame it started at
  std::int64_t elapsed = 0;  // output frames played
  std::int64_t until = 0;    // output frames before the crossfade (L / ρ at the join)
  std::uint32_t fade = 0;    // the crossfade, output frames
  Handover* members[kMembers] = {};
  VoiceId voices[kMembers] = {};
  std::uint32_t count = 0;
  bool active = false;
  bool rejoin = false;  // a voice's own stretcher (and resampler) going back onto the bus: one member,
                        // its gain and pan after the stretch, as it played them (bus_rejoin)
};

}  // namespace stemd::engine
