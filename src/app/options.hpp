// Command-line flags and config file (CLI11). Every flag is also a config-file key.
// [main] thread only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stemd::app {

struct Options {
  std::string backend = "auto";  // auto | portaudio | null | render
  std::string device;
  int sample_rate = 0;
  std::uint32_t buffer_size = 1024;
  bool buffer_size_given = false;  // on the command line or in the config file
  std::string preset;              // --preset NAME; empty = from the board model
  std::string preset_reason;       // what chose the buffer size (logged at start)
  bool list_devices = false;
  std::string config_path;                   // --config FILE, if given (SIGHUP reads it again)
  std::vector<std::string> config_warnings;  // "FILE:LINE: unknown key 'x' — ignored", logged at start
  std::string effective_config;              // every option's value after parsing, as TOML (reload diff)
  std::string log_level = "info";
  std::vector<std::string> play;
  bool loop = false;
  float volume = 1.0f;
  std::string render_to;
  double duration = 0;  // seconds of audio, then exit (0 = run until signalled / render until idle)
  double preload_limit_mb = 16;
  double ring_ms = 500;    // a stream's ring capacity on a steady disk
  double ring_min_ms = 0;  // adaptive prefetch: the least fill the loader keeps (0: ring_ms / 2)
  double ring_max_ms = 0;  // and the largest ring a jittery source gets (0: 4000, or ring_ms if more)
  double head_ms = 500;
  std::uint32_t max_voices = 4096;
  std::uint32_t max_resampled_voices = 64;
  std::uint32_t max_stretched_voices = 2;  // 8 with --stretch-method time_stretch
  std::string resample_quality = "fast";
  bool limiter = true;
  bool mlock = false;  // --mlock: lock the daemon's memory (no page faults on the audio path)
  std::string script;  // --script FILE: timed OSC messages
  // --state-file PATH: sources, levels (and with --restore-voices the playing voices) survive
  // a restart; see state.hpp. --state-interval: positions/tempo alone are rewritten at most
  // this often (s).
  std::string state_file;
  bool restore_voices = false;
  double state_interval = 5.0;
  std::string on_device_loss = "recover";  // recover (hand over to a fresh image, retry) | exit (status 3)
  std::string crossfade_law = "linear";
  std::vector<double> movement_thresholds{0.02, 0.05, 0.10};
  std::vector<double> movement_tempos{105, 110, 115, 118, 130};
  double tone_level_db = -12.0;  // /test_tone
  double tone_seconds = 2.0;
  double limiter_threshold_db = -1.0;
  double shutdown_fade_ms = 50;
  // OSC control
  bool no_osc = false;  // also implied by render mode unless --osc-port is given
  std::uint16_t osc_port = 57120;
  std::string osc_bind = "127.0.0.1";
  int osc_tcp_port = -1;  // -1 = off
  std::string allow;
  std::string media_root;
  std::uint32_t max_sources = 4096;
  std::uint32_t max_memory_mb = 2048;  // set from the preset unless given (options.cpp)
  std::uint32_t max_channels = 32;
  std::uint32_t max_subscribers = 16;
  std::uint32_t max_string = 1024;
  std::uint32_t max_tcp_clients = 16;
  // The old crowdstream server's flags, same meaning
  std::string deck_files[4];  // --a/--b/--c/--d: load into 100/1100/2100/3100 and play (looped)
  float deck_volume = 0.8f;   // --vol: their volume
  double rate = 1.0;          // --rate: their playback rate
  std::vector<float> ab;      // --ab A B: deck A and B levels
  std::vector<float> levels;  // --levels A B C D
  double bpm = 120.0;         // --bpm: base tempo
  int meter = 4;              // --meter: beats per bar
  bool watch = false;
  double health_interval = 60;  // --health-interval: seconds between info health lines (0 = only on trouble) //
                                // --watch: a status line every second
  std::string stretch_method = "playback_rate";  // --stretch-method
};

// Parses argv (and the --config file). Returns -1 to continue, or an exit code (0 after
// --help/--version, 2 on a bad flag, config file, key or value). The error is printed on
// stderr — or, when `error` is given (a SIGHUP reload), returned there and nothing printed.
// A config-file problem names the file, the line and the key.
int parse_options(int argc, char** argv, Options& opts, std::string* error = nullptr);

// The keys that differ between two parses (their effective_config), e.g. {"log-level", "allow"}.
std::vector<std::string> changed_keys(const Options& before, const Options& after);

}  // namespace stemd::app
