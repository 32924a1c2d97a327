// stemd's flags, one function per --help group (see options.hpp, options_internal.hpp).
#include "control/limits.hpp"
#include "logging.hpp"
#include "options_internal.hpp"
#include "web/web_host.hpp"

#include <cerrno>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace stemd::app {

using options_detail::trim;
using options_detail::version_text;

namespace {

// An integer in [lo, hi]; the error names the range whatever was wrong ("abc", "-5", "99999").
CLI::Validator int_range(long lo, long hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        const std::string want = "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
        char* end = nullptr;
        errno = 0;
        const long v = std::strtol(s.c_str(), &end, 10);
        if (s.empty() || end == nullptr || *end != '\0' || errno != 0) return "'" + s + "' " + want;
        if (v < lo || v > hi) return std::to_string(v) + " is out of range: " + want;
        return {};
      },
      "INT in [" + std::to_string(lo) + ".." + std::to_string(hi) + "]");
}

// Every numeric option refuses NaN and ±Inf: a range check alone lets NaN through (every
// comparison with NaN is false), e.g. --tone-seconds nan, --bpm nan, --limiter-threshold-db nan.
// Added to every option in one loop (add_finite_checks), so an option added later is covered.
CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        const std::string t = trim(s);
        char* end = nullptr;
        const double v = std::strtod(t.c_str(), &end);
        if (!t.empty() && end != nullptr && *end == '\0' && !std::isfinite(v)) {
          return "'" + s + "' is not a finite number";
        }
        return {};
      },
      "");  // no description: the help keeps showing the option's own type and range
}

}  // namespace

// Every option that takes a value other than free text (TEXT: names, addresses; FILE: paths)
// gets finite_number(): FLOAT options, SECONDS, and integer options (which refuse "nan" anyway).
void add_finite_checks(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    if (opt->get_type_size() == 0) continue;  // a flag
    std::string type = opt->get_type_name();
    type = type.substr(0, type.find(':'));  // without the validators' descriptions
    if (type == "TEXT" || type == "FILE") continue;
    opt->check(finite_number());
  }
}

// --sample-rate: 0 (the device's own rate) or 8000..384000 Hz. A rate of 1 Hz made a period of
// 1024 frames last 17 minutes (the null backend's pacer, shutdown).
CLI::Option* check_sample_rate(CLI::Option* opt) {
  return opt->check(CLI::Validator(
      [](std::string& s) -> std::string {
        const std::string want = "must be 0 (the device's rate) or from 8000 to 384000 Hz";
        char* end = nullptr;
        errno = 0;
        const long v = std::strtol(s.c_str(), &end, 10);
        if (s.empty() || end == nullptr || *end != '\0' || errno != 0) {
          // 44100.5: a number, maybe in the range, but not a whole one (it said only the range).
          const double d = std::strtod(s.c_str(), &end);
          if (!s.empty() && end != nullptr && *end == '\0' && std::isfinite(d) && d != std::floor(d))
            return "'" + s + "' is not a whole number of Hz: " + want;
          return "'" + s + "' " + want;
        }
        if (v != 0 && (v < 8000 || v > 384000)) return std::to_string(v) + " Hz is out of range: " + want;
        return {};
      },
      "0 or INT in [8000..384000]"));
}

namespace {

std::string latency_help() {
  std::string s = "Frames per buffer (period), 16..8192. Latency per buffer at 48 kHz:";
  for (int n : {128, 256, 512, 1024, 2048}) {
    char b[64];
    std::snprintf(b, sizeof b, " %d = %.1f ms%s", n, 1000.0 * n / 48000, n == 2048 ? "" : ",");
    s += b;
  }
  s += ". Raise it if the log reports underruns (Raspberry Pi 4: 1024). Default: --preset's; without one, on a JACK "
       "server its period, else the board's preset (desktop 512, Raspberry Pi 4 1024: the start line says which)";
  return s;
}

// --preset and --max-memory-mb name the presets and their values: from the one table.
std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& p : options_detail::presets()) names.emplace_back(p.name);
  return names;
}

std::string preset_help() {
  std::string list;
  for (const auto& p : options_detail::presets()) {
    list += (list.empty() ? "" : ", ") + std::string(p.name) + " (" + std::to_string(p.buffer_size) + ")";
  }
  return "Platform preset for the buffer size: " + list +
         ". Without it (and without --buffer-size) the board model picks one";
}

std::string memory_help() {
  std::string list;
  for (const auto& p : options_detail::presets()) {
    list += (list.empty() ? "" : ", ") + std::string(p.name) + " " + std::to_string(p.memory_mb);
  }
  return "Memory budget for everything clients load (decoded audio, heads, rings), MiB; default from the preset: " +
         list;
}

// Output: the backend, the device, the rate and the buffer size.
void add_output_options(CLI::App& app, Options& o) {
  app.add_option("--backend", o.backend,
                 "Output: auto (PortAudio, or null when it has no output device and no --device is given), "
                 "portaudio (waits for its device when it is missing at start), null (no hardware, real-time "
                 "paced), render (to a file)")
      ->check(CLI::IsMember({"auto", "portaudio", "null", "render"}))
      ->capture_default_str();
  app.add_option("--device", o.device,
                 "PortAudio output device: index or (part of) its name; see --list-devices. Missing at "
                 "start: stemd waits for it (status 'waiting'), never falls back to null");
  app.add_option("--sample-rate", o.sample_rate,
                 "Output sample rate in Hz (0 = the device's default; 48000 without one)")
      ->capture_default_str();
  check_sample_rate(app.get_option("--sample-rate"));  // 0, or 8000..384000
  app.add_option("--preset", o.preset, preset_help())->check(CLI::IsMember(preset_names()));
  app.add_option("-b,--buffer-size", o.buffer_size, latency_help())
      ->transform(int_range(16, 8192));  // no default shown: the preset or the board decides
  app.add_flag("--list-devices", o.list_devices, "List PortAudio's output devices and exit");
  app.add_option(
         "--on-device-loss", o.on_device_loss,
         "When the output device goes away: recover (keep every source, level and voice, retry the "
         "device every 0.5 s for 30 s, then doubling to 5 s, play on where it stopped) or exit (status 3, for a "
         "service manager to restart)")
      ->check(CLI::IsMember({"recover", "exit"}))
      ->capture_default_str();
}

// --play and its level, the render target (Output), then files and streaming.
void add_play_and_file_options(CLI::App& app, Options& o) {
  app.add_option("--play", o.play,
                 "Play FILE at start, on deck A (repeatable): loaded as a client's /stemd/load is "
                 "(--media-root, --max-sources apply); a file that is refused is an error")
      ->type_name("FILE");
  app.add_flag("--loop", o.loop, "Loop the --play files");
  app.add_option("--volume", o.volume, "Volume of the --play files (linear, 0..4)")
      ->check(CLI::Range(0.0f, 4.0f))
      ->capture_default_str();
  app.add_option("--render-to", o.render_to,
                 "Render the output to FILE (.wav, .flac, .aiff, .ogg) faster than "
                 "real time; implies --backend render")
      ->type_name("FILE");
  app.add_option("--duration", o.duration,
                 "Stop after SECONDS of audio (render: length of the file; without it, "
                 "render until every voice has ended)")
      ->check(CLI::Range(0.0, 1e7))
      ->type_name("SECONDS");
  app.add_option("--preload-limit-mb", o.preload_limit_mb,
                 "Files whose decoded size is at most this many MiB are held in "
                 "RAM; larger ones are streamed from disk")
      ->check(CLI::Range(0.0, 65536.0))
      ->capture_default_str();
  app.add_option("--ring-ms", o.ring_ms,
                 "Ring per streaming voice, in ms, on a steady disk (read-ahead; memory at 48 kHz: 192 KB per "
                 "second for 16-bit stereo files, 384 KB for others)")
      ->check(CLI::Range(20.0, 10000.0))
      ->capture_default_str();
  app.add_option("--ring-min-ms", o.ring_min_ms,
                 "Adaptive prefetch: the least read-ahead kept per voice, in ms (default half of --ring-ms); "
                 "the loader keeps more when the measured disk waits ask for it (up to the ring's size)")
      ->check(CLI::Range(20.0, 10000.0));
  app.add_option("--ring-max-ms", o.ring_max_ms,
                 "Adaptive prefetch: the largest ring a voice gets when its file's reads are slow or jittery, "
                 "in ms (default 4000; --ring-min-ms = --ring-ms = --ring-max-ms: fixed rings, kept full)")
      ->check(CLI::Range(20.0, 60000.0));
  app.add_option("--loader-priority", o.loader_priority,
                 "Real-time (SCHED_FIFO) priority of the loader thread that fills the rings, kept below the "
                 "audio thread's (one step below it, or normal scheduling, where the audio thread runs lower: "
                 "the 'audio thread:' log line says so) so other programs' work cannot starve the streams; while it "
                 "uses more than half a "
                 "core it runs at normal scheduling, so it never stalls the audio thread (0: normal scheduling; "
                 "needs an rtprio limit, as the audio thread does)")
      ->check(CLI::Range(0, 49))
      ->capture_default_str();
  app.add_option("--head-ms", o.head_ms,
                 "Pre-decoded start of a streamed file, in ms (lets play start at once; int16 for 16-bit stereo "
                 "files: 192 KB per second at 48 kHz, float for others)")
      ->check(CLI::Range(10.0, 10000.0))
      ->capture_default_str();
}

// Voice limits (Limits and security), then the sound: resampler, limiter, master.
void add_voice_and_sound_options(CLI::App& app, Options& o) {
  app.add_option("--max-voices", o.max_voices, "Voices that can play at once")
      ->transform(int_range(1, 65536))
      ->capture_default_str();
  app.add_option("--max-resampled-voices", o.max_resampled_voices,
                 "The resampling budget, in units of work (and the resamplers made, ≈ 134 KiB each at 'fast'): "
                 "a voice at a rate ≠ 1 or from a file at another sample rate holds a resampler, which costs one "
                 "unit while it reads ≤ 1.25 source frames per output frame (rate × file rate ÷ output rate), k "
                 "units at k beyond (rate 4: 4; measured: its cost grows about as k), × the tempo if stretched; "
                 "past it a rate or tempo change is refused busy")
      ->transform(int_range(0, 65536))
      ->capture_default_str();
  app.add_option("--max-stretched-voices", o.max_stretched_voices,
                 "The stretching budget, in units of work (and the stretchers made): a time-stretched voice "
                 "costs one unit at a tempo ≤ 1.25 (Rubber Band, ≈ 3 % of a core on a desktop, about 4–6 fit on "
                 "a Raspberry Pi 4), k units at a tempo k beyond; default 2, or 8 with --stretch-method "
                 "time_stretch")
      ->transform(int_range(0, 256))
      ->capture_default_str();
  app.add_option("--stretch-buses", o.stretch_buses,
                 "Stretch buses for 44.1 kHz files and for files at the output rate (each): the stretched "
                 "voices of a deck at one tempo share one stretcher, so 8 stems cost one stretch, not 8; "
                 "-1 = 2 with --stretch-method time_stretch, else 0")
      ->transform(int_range(-1, 16))
      ->capture_default_str();
  app.add_flag("--stretch-bus-share", o.stretch_bus_share,
               "One stretch bus for the stretched voices of every deck at one tempo (two decks: half the "
               "Rubber Band cost). The trade: each deck's fader and EQ then act before the stretch, heard one "
               "lookahead (≈ 45 ms) late on those voices (off: one bus per deck, fader and EQ at once); a deck "
               "started while another plays keeps its attack. On in the pi4 preset (=false to turn it off)");
  app.add_option("--stretch-primes-per-callback", o.stretch_primes_per_callback,
                 "Voices' own time-stretchers the audio thread primes in one period at most (a prime is about "
                 "two periods of Rubber Band work); a voice past it is heard on the beat grid a period or more "
                 "later (/stemd/voice/deferred). 0 = no bound")
      ->transform(int_range(0, 256))
      ->capture_default_str();
  app.add_option("--resample-quality", o.resample_quality,
                 "fast (119 dB SNR, ≈ 90 ns/frame), medium (142 dB, "
                 "≈ 180 ns), best (149 dB, ≈ 570 ns)")
      ->check(CLI::IsMember({"fast", "medium", "best"}))
      ->capture_default_str();
  app.add_option("--limiter", o.limiter,
                 "The master's output stage: true (a safety limiter, transparent below its threshold, holds "
                 "peaks at it above), false (none), or soft_clip (the old crowdstream server's 0.9·tanh(0.9·x) "
                 "on every sample; the default in crowdstream mode)")
      ->transform(CLI::Validator(
          [](std::string& v) -> std::string {
            std::string l;
            for (char c : v) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            if (l == "true" || l == "1" || l == "on" || l == "yes")
              v = "true";
            else if (l == "false" || l == "0" || l == "off" || l == "no")
              v = "false";
            else if (l == "soft_clip")
              v = "soft_clip";
            else
              return "'" + v + "': --limiter must be true, false or soft_clip";
            return {};
          },
          "true|false|soft_clip"))
      ->capture_default_str();
  app.add_option("--master", o.master,
                 "The master's gain (linear, 0..4) at start; default 1.0, or 0.8 (the old server's fixed "
                 "master) in crowdstream mode")
      ->check(CLI::Range(0.0, 4.0));
  app.add_option("--limiter-threshold-db", o.limiter_threshold_db, "The limiter's ceiling in dBFS")
      ->check(CLI::Range(-24.0, 0.0))
      ->capture_default_str();
}

// A scripted session, the state file, crossfade law, test tone, shutdown fade.
void add_session_options(CLI::App& app, Options& o) {
  app.add_option("--script", o.script,
                 "Timed OSC messages to run (\"SECONDS /address args…\" per line), each at "
                 "its exact frame from the start: a scripted session; with --render-to, "
                 "rendered deterministically")
      ->type_name("FILE");
  app.add_option("--state-file", o.state_file,
                 "Keep the daemon's state in FILE: loaded sources, deck levels and EQ, master, tempo (and "
                 "with --restore-voices the playing voices) come back after a restart. Written atomically "
                 "when the state changes and at shutdown, read and written by a helper process given up on "
                 "after --load-timeout (a file system that does not answer: started without the restore, "
                 "the file then never written by that run)")
      ->type_name("FILE");
  app.add_flag("--restore-voices", o.restore_voices,
               "With --state-file: also save the playing voices (position, volume, loop, rate, pan, pause) "
               "and start them again where they were after a restart");
  app.add_option("--state-interval", o.state_interval,
                 "With --state-file: levels, EQ, fades, voice positions and a gliding tempo are written at "
                 "most every SECONDS (loads, plays, stops and pauses within a second)")
      ->check(CLI::Range(1.0, 3600.0))
      ->type_name("SECONDS")
      ->capture_default_str();
  app.add_option("--crossfade-law", o.crossfade_law,
                 "How /crossfade_levels maps its levels: linear (as "
                 "crowdstream) or equal_power (sin(l·π/2): constant power)")
      ->check(CLI::IsMember({"linear", "equal_power"}))
      ->capture_default_str();
  // The ranges /stemd/tone takes (control/limits.hpp): one number for the flag, its help and OSC.
  app.add_option("--tone-level-db", o.tone_level_db, "Peak level of /test_tone in dBFS")
      ->check(CLI::Range(control::limits::kMinToneDb, 0.0))
      ->capture_default_str();
  app.add_option("--tone-seconds", o.tone_seconds, "Length of /test_tone, in output seconds")
      ->check(CLI::Range(control::limits::kMinToneSeconds, control::limits::kMaxToneSeconds))
      ->capture_default_str();
  app.add_option("--shutdown-fade-ms", o.shutdown_fade_ms, "Fade-out on SIGINT/SIGTERM, in ms")
      ->check(CLI::Range(0.0, 10000.0))
      ->capture_default_str();
}

// OSC and network: ports, bind address, who may send, where clients load from.
void add_osc_options(CLI::App& app, Options& o) {
  app.add_flag("--no-osc", o.no_osc, "Do not listen for OSC (play --play files only)");
  app.add_option("--osc-port", o.osc_port,
                 "UDP port for OSC (crowdstream deployments use 57120 or 57122; "
                 "0 = any free port, logged at start)")
      ->transform(int_range(0, 65535))
      ->capture_default_str();
  app.add_option("--osc-bind", o.osc_bind,
                 "Address to listen on: 127.0.0.1 (default), ::1, 0.0.0.0, :: or one "
                 "interface's address. Beyond loopback, --allow is required")
      ->capture_default_str();
  app.add_option("--osc-tcp-port", o.osc_tcp_port,
                 "Also accept OSC over TCP (OSC 1.0 size-prefixed frames) on this "
                 "port; -1 = off")
      ->transform(int_range(-1, 65535))
      ->capture_default_str();
  app.add_option("--allow", o.allow,
                 "Sources allowed to send OSC, as CIDRs (\"10.0.0.0/8,192.168.1.7\"); "
                 "default loopback only");
  app.add_option("--media-root", o.media_root,
                 "Directory OSC clients load from: relative paths resolve against "
                 "it, paths outside it are refused. May be missing at start (a disk mounted later): "
                 "loads are refused, naming it, until it is there");
  app.add_option("--http-port,--web-port", o.http_port,
                 "Serve the web monitor (status, controls, live audio; docs/monitor.md) on this TCP "
                 "port; -1 = off, 0 = any free port (logged at start)")
      ->transform(int_range(-1, 65535))
      ->capture_default_str();
  app.add_option("--http-bind", o.http_bind,
                 "Address the web monitor listens on; beyond loopback --allow is required "
                 "and applies as for OSC")
      ->capture_default_str();
  app.add_option("--http-host", o.http_hosts,
                 "Another name the web monitor answers to (repeatable): this machine's name in your network's DNS "
                 "(pi.lan). Its addresses, localhost, its host name alone and NAME.local always are; a request "
                 "naming any other Host is refused (DNS rebinding)")
      ->check(CLI::Validator([](std::string& s) { return web::host_name_problem(s); }, ""));
  app.add_option("--web-root", o.web_root, "Directory of the web monitor's page (default: the installed one)");
  app.add_option("--http-max-clients", o.http_max_clients, "Web monitor connections at most (HTTP and WebSocket)")
      ->transform(int_range(1, 1024))
      ->capture_default_str();
  app.add_option("--http-max-clients-per-address", o.http_max_clients_per_address,
                 "Web monitor connections from one address at most (0: half of --http-max-clients; loopback, i.e. "
                 "local pages and tools, may then use them all)")
      ->transform(int_range(0, 1024))
      ->capture_default_str();
  app.add_option("--http-max-listeners", o.http_max_listeners, "Web monitor audio listeners (/ws/audio) at most")
      ->transform(int_range(1, 64))
      ->capture_default_str();
}

// Limits and security: what a client can make the daemon hold, and the TCP/UDP guards.
void add_limit_options(CLI::App& app, Options& o) {
  app.add_option("--max-sources", o.max_sources, "Loaded files at most")
      ->transform(int_range(1, 1000000))
      ->capture_default_str();
  app.add_option("--max-memory-mb", o.max_memory_mb, memory_help())->transform(int_range(16, 1048576));
  app.add_option("--max-channels", o.max_channels, "Most channels a loaded file may have (checked from its header)")
      ->transform(int_range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-subscribers", o.max_subscribers, "Event subscribers (/stemd/notify) at most")
      ->transform(int_range(0, 1024))
      ->capture_default_str();
  app.add_option("--max-string", o.max_string, "Longest OSC string accepted (paths, names), bytes")
      ->transform(int_range(16, 65536))
      ->capture_default_str();
  app.add_option("--max-tcp-clients", o.max_tcp_clients, "TCP clients at most")
      ->transform(int_range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-tcp-clients-per-address", o.max_tcp_clients_per_address,
                 "TCP clients from one address at most (0: half of --max-tcp-clients)")
      ->transform(int_range(0, 1024))
      ->capture_default_str();
  app.add_option("--tcp-idle-timeout", o.tcp_idle_timeout, "Seconds a TCP client may send nothing before it is closed")
      ->check(CLI::Range(0.05, 86400.0))
      ->capture_default_str();
  app.add_option("--tcp-frame-timeout", o.tcp_frame_timeout,
                 "Seconds a TCP client has to finish a frame (and to send its first)")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  app.add_option("--load-timeout", o.load_timeout,
                 "Seconds an OSC load (or a play's stream open) may go without its file system answering, "
                 "counted from when it started and then from each read that returned, before it answers /fail "
                 "\"timed out\" (a stalled disk or NFS server); its opener thread is abandoned until the file "
                 "system answers. A slow file system that keeps answering is not timed out; every load is "
                 "answered within 12x this")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  app.add_option("--subscription-ttl", o.subscription_ttl,
                 "Seconds a /stemd/notify subscription lasts unless renewed (by sending it again)")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
  app.add_option("--cookie-exempt", o.cookie_exempt,
                 "UDP sources (CIDRs) answered in full without the cookie exchange; \"none\": none. Others "
                 "get at most 3x their request until they echo /stemd/cookie")
      ->capture_default_str();
}

// The old server's deck flags (crowdstream deployments start it with these), the health line.
void add_deck_options(CLI::App& app, Options& o) {
  const char* deck_flags[4] = {"--a", "--b", "--c", "--d"};
  const char* deck_help[4] = {"Load FILE into buffer 100 (deck A) and play it, looped", "… buffer 1100 (deck B)",
                              "… buffer 2100 (deck C)", "… buffer 3100 (deck D)"};
  for (int i = 0; i < 4; ++i) app.add_option(deck_flags[i], o.deck_files[i], deck_help[i])->type_name("FILE");
  app.add_option("--vol", o.deck_volume, "Volume of the --a/--b/--c/--d files")
      ->check(CLI::Range(0.0f, 4.0f))
      ->capture_default_str();
  app.add_option("--rate", o.rate, "Playback rate of the --a/--b/--c/--d files (speed and pitch)")
      ->check(CLI::Range(0.25, 4.0))
      ->capture_default_str();
  app.add_option("--ab", o.ab, "Deck A and B levels")->expected(2)->check(CLI::Range(0.0f, 4.0f));
  app.add_option("--levels", o.levels, "Deck A, B, C, D levels")->expected(4)->check(CLI::Range(0.0f, 4.0f));
  app.add_option("--bpm", o.bpm, "Base tempo of the clock (bpm)")->check(CLI::Range(1.0, 999.0))->capture_default_str();
  app.add_option("--meter", o.meter, "Beats per bar")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--quantize", o.quantize,
                 "Start plays on the next multiple of this many beats from the start, as /stemd/quantize does "
                 "(0 = off; with --link, on the session's grid): boxes that share a beat grid keep it after a "
                 "reboot without a state file")
      ->check(CLI::Validator(
          [](const std::string& v) {
            const double b = std::strtod(v.c_str(), nullptr);
            return b == 0 || (b >= control::limits::kMinQuantumBeats && b <= control::limits::kMaxQuantumBeats)
                       ? std::string()
                       : std::string("0 (off) or 1/64 .. 256 beats");
          },
          ""))
      ->type_name("BEATS")
      ->capture_default_str();
  app.add_flag("--link", o.link,
               "Join the Ableton Link session on the local network (UDP multicast 224.76.78.75:20808): the tempo "
               "follows it, /set_tempo sets it for every peer, quantised starts land on its beats (docs/sync.md)");
  app.add_flag("--watch", o.watch, "Log the health line every second");
  app.add_option("--health-interval", o.health_interval,
                 "Seconds between health lines in the log (voices, CPU, real-time policy, ring fill, underruns, "
                 "device underflows, memory); 0 = only when something goes wrong")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  app.add_option("--stretch-method", o.stretch_method,
                 "How /set_tempo changes playback: playback_rate (vinyl) or "
                 "time_stretch (tempo without pitch, Rubber Band; --max-stretched-voices)")
      ->check(CLI::IsMember({"playback_rate", "time_stretch", "pyrubberband", "audiotsm"}))
      ->capture_default_str();
  app.add_option("--stretch-engine", o.stretch_engine,
                 "Rubber Band engine of time-stretched voices: finer (R3, steadiest pitch) or faster (R2: measured "
                 "about as costly here, with small level dips at tempo changes); the pi4 preset picks faster")
      ->check(CLI::IsMember({"finer", "faster"}))
      ->capture_default_str();
}

// The old server's remaining flags (crowdstream mode: see options.hpp).
void add_crowdstream_options(CLI::App& app, Options& o) {
  app.add_option("--port", o.old_port,
                 "The old server's spelling of --osc-port: the same UDP port, in crowdstream mode (the old "
                 "server's sound: EQ ignored unless --enable-filters, master 0.8, soft clip)")
      ->transform(int_range(0, 65535))
      ->type_name("UINT");
  app.add_flag("--disable-filters", o.disable_filters,
               "Deck EQ messages (/deck_eq, /deck_eq_all, /deck_filter) are checked, answered /done and "
               "ignored, as the old server's production launch line had it");
  app.add_flag("--enable-filters", o.enable_filters,
               "Deck EQ messages are applied (stemd's default; in crowdstream mode they are ignored without "
               "it, as the old server's filters were off by default on Linux; --disable-filters wins over it, "
               "as on the old server)");
  app.add_flag("--optimized-filters", o.optimized_filters,
               "Accepted: the old server's faster filter implementation. stemd has one EQ, always cheap");
  app.add_flag("--disable-time-stretch", o.disable_time_stretch,
               "With --stretch-method pyrubberband|audiotsm: the tempo (/set_tempo, movement) moves the clock "
               "only, players stay at their own rate (the old server's meaning; no effect with playback_rate)");
  app.add_option("--bpm-config", o.bpm_config,
                 "The old server's movement → tempo table (JSON, its bpm_config.json): thresholds, tempos, "
                 "movement_max_value and the smoothing (as --tempo-rise-s/--tempo-fall-s)")
      ->type_name("FILE");
  app.add_option("--c_at", o.c_at, "Start --c's deck C this many seconds after start (without it, --c only loads)")
      ->check(CLI::Range(0.0, 86400.0))
      ->type_name("SECONDS");
  app.add_option("--c_preload", o.c_preload, "Load FILE into buffer 2100 (deck C) without starting it")
      ->type_name("FILE");
  app.add_option("--dummy_after", o.dummy_after,
                 "This many seconds after start, act as if /dummy <--dummy_args…> arrived "
                 "(e.g. --dummy_args schedule_c_at 8)")
      ->check(CLI::Range(0.0, 86400.0))
      ->type_name("SECONDS");
  app.add_option("--dummy_args", o.dummy_args, "Arguments of the simulated /dummy");
  app.add_option("--tempo-rise-s", o.tempo_rise_s,
                 "/dance/total_movement: time constant of a rising tempo, seconds (0.3; crowdstream mode: 0.2785, "
                 "the old server's at 1024 frames)")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  app.add_option("--tempo-fall-s", o.tempo_fall_s,
                 "/dance/total_movement: time constant of a falling tempo, seconds (30; crowdstream mode: 69.66, "
                 "the old server's at 1024 frames)")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();

  app.add_option("--movement-thresholds", o.movement_thresholds,
                 "/dance/total_movement: the three movement "
                 "thresholds (normalised 0–1)")
      ->expected(3)
      ->capture_default_str();
  app.add_option("--movement-tempos", o.movement_tempos,
                 "/dance/total_movement: tempos below each threshold, "
                 "then the range above the last (5 bpm values)")
      ->expected(5)
      ->capture_default_str();
}

// Service and logging (listed last, with --config, --help and --version).
void add_service_options(CLI::App& app, Options& o) {
  app.add_option("--log-level", o.log_level,
                 "trace, debug, info, warning, error, critical or off (as the log names them; warn and err "
                 "too)")
      ->check(CLI::IsMember(kLogLevelNames))
      ->capture_default_str();
  app.add_flag("--mlock", o.mlock,
               "Lock all memory (mlockall): no page faults in the audio path; needs "
               "LimitMEMLOCK (the unit sets it)");
  app.set_config("--config", "",
                 "Read options from FILE (TOML: keys are the long flag names, [sections] as in --help's "
                 "groups). Without it: $XDG_CONFIG_HOME/stemd/stemd.conf (~/.config/stemd/stemd.conf), "
                 "then /etc/stemd/stemd.conf, then the installed one (PREFIX/etc/stemd/stemd.conf, stemd being "
                 "PREFIX/bin/stemd, PREFIX not /usr); --config none reads no file. Read by a helper process "
                 "given up on after --load-timeout as given on the command line (10 s without): a file system "
                 "that does not answer is an error at start, a reload refused at SIGHUP")
      ->type_name("FILE");
  app.add_flag("--check-config", o.check_config,
               "Check the command line and the config file as a start would read them, and what can be checked "
               "without the device or the ports (ranges, --media-root, --state-file's directory, --bpm-config, "
               "files to play, addresses); one line per problem (FILE:LINE:), then a verdict. Exit 0 when a start "
               "would run, 2 when it would not. Files — the config file too — are checked in a child process "
               "given up on after --load-timeout (a file system that does not answer). Starts nothing");
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.set_version_flag("--version", version_text(), "Print the version, git revision and libsndfile's formats");
}

}  // namespace

namespace options_detail {

// The calls keep the order the flags have always been added in: --help lists each group's
// flags in that order, and CLI11 checks the values in it (the first bad one is reported).
void add_flags(CLI::App& app, Options& o) {
  add_output_options(app, o);
  add_play_and_file_options(app, o);
  add_voice_and_sound_options(app, o);
  add_session_options(app, o);
  add_osc_options(app, o);
  add_limit_options(app, o);
  add_deck_options(app, o);
  add_crowdstream_options(app, o);
  add_service_options(app, o);

  add_finite_checks(app);  // after every add_option: NaN/Inf refused by each numeric option
  assign_groups(app);
  app.formatter(help_formatter());
  app.config_formatter(sectioned_config(known_keys(app)));
}

}  // namespace options_detail

}  // namespace stemd::app
