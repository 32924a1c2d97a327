// Command-line flags and config file (CLI11). Every flag is also a config-file key.
// [main] thread only.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace stemd::app {

struct ConfigInput;  // config_io.hpp

struct Options {
  std::string backend = "auto";  // auto | portaudio | null | render
  std::string device;
  int sample_rate = 0;
  std::uint32_t buffer_size = 1024;
  bool buffer_size_given = false;       // on the command line or in the config file
  std::string preset;                   // --preset NAME; empty = from the board model
  std::string preset_reason;            // what chose the buffer size (logged at start)
  bool buffer_size_from_board = false;  // neither given nor a preset: the board's default (JACK: its period)
  bool list_devices = false;
  bool check_config = false;  // --check-config: check the command line and the config file, start nothing
  std::string config_path;    // --config FILE, or the one the search found (SIGHUP reads it again)
  std::string config_source;  // "config file X (found without --config)", "no config file (…)": logged
  std::vector<std::string> config_warnings;  // "FILE:LINE: unknown key 'x' — ignored", logged at start
  std::map<std::string, int> config_lines;   // each key the config file sets → its line
  std::string effective_config;              // every option's value after parsing, as TOML (reload diff)
  std::string log_level = "info";
  // --play FILE…: a relative FILE on the command line is the working directory's; one from the
  // config file has been made the media root's (or, without one, the config file's directory's)
  // by the parse (resolve_config_files, options_config.cpp), so a start and --check-config open
  // the same file whatever directory systemd starts stemd in.
  std::vector<std::string> play;
  std::vector<int> play_lines;  // the config file's line of each `play` value; empty: the command line's
  bool loop = false;
  float volume = 1.0f;
  std::string render_to;
  double duration = 0;  // seconds of audio, then exit (0 = run until signalled / render until idle)
  double preload_limit_mb = 16;
  double ring_ms = 400;    // a stream's ring capacity on a steady disk
  double ring_min_ms = 0;  // adaptive prefetch: the least fill the loader keeps (0: ring_ms / 2)
  double ring_max_ms = 0;  // and the largest ring a jittery source gets (0: 4000, or ring_ms if more)
  double head_ms = 100;
  int loader_priority = 1;  // SCHED_FIFO priority of the loader thread (0: normal scheduling)
  std::uint32_t max_voices = 4096;
  std::uint32_t max_resampled_voices = 64;
  std::uint32_t max_stretched_voices = 2;  // 8 with --stretch-method time_stretch
  int stretch_primes_per_callback = 1;     // --stretch-primes-per-callback; 0 = no bound
  int stretch_buses = -1;          // --stretch-buses per source rate; -1: 2 with --stretch-method time_stretch, else 0
  bool stretch_bus_share = false;  // --stretch-bus-share: one bus for every deck (engine/stretch_bus.hpp)
  std::string resample_quality = "fast";
  std::string limiter = "true";  // true | false | soft_clip (crowdstream mode's default: soft_clip)
  bool limiter_given = false;    // --limiter on the command line or in the config file
  // The master's gain (--master, linear 0..4); default 1.0, or 0.8 in crowdstream mode.
  double master = 1.0;
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
  // The web monitor (issue 16, src/web): off unless --http-port is given.
  int http_port = -1;  // -1 = off, 0 = any free port (logged)
  std::string http_bind = "127.0.0.1";
  std::vector<std::string> http_hosts;  // --http-host: more names the monitor answers to (pi.lan)
  std::string web_root;                 // empty: the installed page (share/stemd/web), else the source tree's web/
  std::uint32_t http_max_clients = 32;
  std::uint32_t http_max_clients_per_address = 0;  // 0 = half of http_max_clients
  std::uint32_t http_max_listeners = 4;
  std::uint32_t max_sources = 4096;
  std::uint32_t max_memory_mb = 2048;  // set from the preset unless given (config/presets)
  std::uint32_t max_channels = 32;
  std::uint32_t max_subscribers = 16;
  std::uint32_t max_string = 1024;
  std::uint32_t max_tcp_clients = 16;
  std::uint32_t max_tcp_clients_per_address = 0;      // 0 = half of max_tcp_clients
  double tcp_idle_timeout = 300.0;                    // seconds without a packet → closed
  double tcp_frame_timeout = 5.0;                     // seconds to finish a frame (or send the first)
  double subscription_ttl = 60.0;                     // seconds a /stemd/notify 1 lasts unless renewed
  double load_timeout = 10.0;                         // seconds an OSC load may take (then /fail "timed out")
  std::string cookie_exempt = "127.0.0.0/8,::1/128";  // UDP sources needing no cookie ("none": no one)
  // The old crowdstream server's flags, same meaning
  std::string deck_files[4];  // --a/--b/--c/--d: load into 100/1100/2100/3100 and play (looped)
  float deck_volume = 0.8f;   // --vol: their volume
  double rate = 1.0;          // --rate: their playback rate
  std::vector<float> ab;      // --ab A B: deck A and B levels
  std::vector<float> levels;  // --levels A B C D
  double bpm = 120.0;         // --bpm: base tempo
  bool bpm_given = false;     // --bpm on the command line or in the config file (a tempo in use)
  int meter = 4;              // --meter: beats per bar
  double quantize = 0;        // --quantize: starts on multiples of this many beats from the start (0 = off)
  bool link = false;          // --link: join the Ableton Link session (tempo, beat, phase)
  bool watch = false;
  double health_interval = 60;  // --health-interval: seconds between info health lines (0 = only on trouble) //
                                // --watch: a status line every second
  std::string stretch_method = "playback_rate";  // --stretch-method (pyrubberband|audiotsm → time_stretch)
  std::string stretch_method_given;              // as given, before that mapping
  std::string stretch_engine = "finer";          // --stretch-engine: Rubber Band R3 (finer) or R2 (faster)
  // The old server's other flags, same meaning:
  bool disable_filters = false;       // EQ messages answered /done and ignored (production)
  bool enable_filters = false;        // EQ applied (stemd's default anyway)
  bool optimized_filters = false;     // the old server's faster filter: stemd has one EQ
  bool disable_time_stretch = false;  // with pyrubberband|audiotsm: tempo moves the clock only
  std::string bpm_config;             // --bpm-config FILE: the movement/tempo table (JSON)
  double c_at = -1;                   // --c_at S: start --c's deck C S seconds after start (<0: off)
  std::string c_preload;              // --c_preload FILE: load into 2100, don't start
  double dummy_after = -1;            // --dummy_after S: route /dummy <--dummy_args> S seconds after start
  std::vector<std::string> dummy_args;
  double movement_max = 0.6;  // from --bpm-config (movement_max_value)
  // The movement tempo's glide (--tempo-rise-s, --tempo-fall-s): defaults 0.3 / 30, or the old
  // server's 0.2785 / 69.66 in crowdstream mode (see bpm_config.hpp).
  double tempo_rise_s = 0.3;
  double tempo_fall_s = 30.0;
  // Crowdstream mode: on when any flag only the old server had is used (--port, --disable-filters,
  // --enable-filters, --optimized-filters, --disable-time-stretch, --bpm-config, --c_at,
  // --c_preload, --dummy_after, --stretch-method pyrubberband|audiotsm). It changes defaults
  // only: --master 0.8, --limiter soft_clip, the old tempo glide, deck EQ ignored.
  bool crowdstream_mode = false;
  std::string crowdstream_flag;  // the first old-server flag given, named in the start's log line
  // --port: the old server's spelling of --osc-port (the same port), an old-server flag like the
  // rest. In crowdstream mode EQ is ignored unless --enable-filters: the old server's filters
  // were off by default on Linux (on only on a Mac M2 Pro or M3 Pro).
  std::uint16_t old_port = 57120;
  bool filters_off_by_default = false;  // EQ ignored by crowdstream mode's default, not --disable-filters
  std::vector<std::string> notes;       // what the old-server flags were mapped to, logged at start
};

// "stemd 0.1.0 (git e156c9816722)": the version and the git revision it was built from, as the
// first line of `stemd --version`, the start line and the status's `version` say it.
std::string build_version();

// Parses argv (and the --config file). Returns -1 to continue, or an exit code (0 after
// --help/--version, 2 on a bad flag, config file, key or value). The error is printed on
// stderr — or, when `error` is given (a SIGHUP reload), returned there and nothing printed.
// A config-file problem names the file, the line and the key. `input`: how the config file is
// read (config_io.hpp: through the helper process, given up on after a deadline; its text read
// already); null: on this thread, with no time-out (unit tests).
int parse_options(int argc, char** argv, Options& opts, std::string* error = nullptr, ConfigInput* input = nullptr);
// The same, for --check-config (options_check.cpp): the error always handed back in `error`, and
// the config file's lines in `skip_lines` read as comments, so that the parse after a bad line
// finds the next problem. `blamed`: the argv indices of the command-line arguments the error is
// about (an unknown flag and its value, or each occurrence of the option it names with its
// values) — without them the next parse finds the next bad value; empty when none is.
int parse_options_skipping(int argc, char** argv, Options& opts, std::string& error, const std::set<int>& skip_lines,
                           std::vector<int>& blamed, ConfigInput* input = nullptr);

// Adds to every option of `app` that takes a number (any type but TEXT and FILE) a check that
// refuses NaN and ±Inf, naming the option (the config-file key). Call after the last add_option.
void add_finite_checks(CLI::App& app);
// --sample-rate: 0 (the device's rate) or 8000..384000 Hz.
CLI::Option* check_sample_rate(CLI::Option* opt);

// The platform presets (--preset NAME), in --help's order. Their one definition is
// config/presets/NAME.conf (installed to share/stemd/presets): the build compiles those files'
// values in (src/CMakeLists.txt), so the files and --preset cannot differ.
struct PresetValues {
  std::string name;
  std::uint32_t buffer_size;    // frames
  std::uint32_t max_memory_mb;  // MiB
  std::string what;             // "Raspberry Pi 4", logged as the buffer size's reason
  std::string stretch_engine;   // "" = not set by the preset
  int stretch_bus_share = -1;   // -1 = not set by the preset, else 0 / 1
};
std::vector<PresetValues> builtin_presets();

// A relative FILE of a start-up flag (`--play FILE`, `--a FILE`…) is the working directory's. When
// it was refused as outside the media root (`reason`) and the same relative path is there under
// the root: " (did you mean ROOT/FILE? a relative --play is the working directory's, CWD, not
// the media root's)". Else "".
std::string relative_flag_hint(const std::string& flag, const std::string& file, const std::string& media_root,
                               const std::string& reason);

// The keys that differ between two parses (their effective_config), e.g. {"log-level", "allow"}.
std::vector<std::string> changed_keys(const Options& before, const Options& after);

}  // namespace stemd::app
