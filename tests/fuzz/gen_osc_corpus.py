#!/usr/bin/env python3
"""Writes the OSC seed corpus (tests/fuzz/corpus/osc/): valid messages of both dialects,
bundles, nested bundles, crowdstream's `/reset ,[]`, and a few classic malformations.

Plain OSC 1.0 encoding written by hand (no liblo), so the seeds do not depend on the code
under test. File names say what each seed is. Re-run after changing; the output is
deterministic.   usage: tests/fuzz/gen_osc_corpus.py [OUTDIR]
"""
import os
import struct
import sys


def pad(b: bytes) -> bytes:
    return b + b"\0" * (4 - len(b) % 4)  # always at least one NUL


def s(x: str) -> bytes:
    return pad(x.encode())


def msg(address: str, *args, tags: str = None) -> bytes:
    t = ","
    body = b""
    for a in args:
        if isinstance(a, bool):
            t += "T" if a else "F"
        elif a is None:
            t += "N"
        elif isinstance(a, int):
            t += "i"
            body += struct.pack(">i", a)
        elif isinstance(a, float):
            t += "f"
            body += struct.pack(">f", a)
        elif isinstance(a, str):
            t += "s"
            body += s(a)
        elif isinstance(a, tuple):  # explicit (tag, bytes)
            t += a[0]
            body += a[1]
        else:
            raise TypeError(a)
    return s(address) + s(tags if tags is not None else t) + body


def bundle(*elements: bytes, timetag: int = 1) -> bytes:
    out = b"#bundle\0" + struct.pack(">Q", timetag)
    for e in elements:
        out += struct.pack(">i", len(e)) + e
    return out


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "osc")
    os.makedirs(out, exist_ok=True)
    seeds = {
        # crowdstream dialect
        "cs_load_buffer": msg("/load_buffer", 101, "tone.wav", "tone"),
        "cs_load_buffer_long": msg("/load_buffer", 1101, "long.wav"),
        "cs_load_buffer_str_id": msg("/load_buffer", "2101", "mono.wav"),
        "cs_load_buffer_escape": msg("/load_buffer", 102, "../../etc/passwd"),
        "cs_play_stem": msg("/play_stem", 101, 1.0, 0.8, 1, 0.0),
        "cs_play_stem_min": msg("/play_stem", 101),
        "cs_play_stem_T": msg("/play_stem", 1101, 1, 0.5, True, 0.25),
        "cs_play_stem_section": msg("/play_stem_section", 101, 1.0, 0.8, 0, 0.1, 2.0),
        "cs_stop_stem": msg("/stop_stem", 101),
        "cs_stem_volume": msg("/stem_volume", 101, 0.5),
        "cs_crossfade_levels": msg("/crossfade_levels", 0.3, 0.7),
        "cs_deck_levels": msg("/deck_levels", 1.0, 0.5, 0.25, 0.0),
        "cs_get_status": msg("/get_status"),
        "cs_test_tone": msg("/test_tone", 440.0),
        "cs_mixer_cleanup": msg("/mixer_cleanup"),
        "cs_deck_eq": msg("/deck_eq", "A", "low", 50.0),
        "cs_deck_eq_all": msg("/deck_eq_all", "B", 10.0, 20.0, 30.0),
        "cs_deck_filter": msg("/deck_filter", "C", "high", 0.5),
        "cs_set_tempo": msg("/set_tempo", 120.0),
        "cs_total_movement": msg("/dance/total_movement", 0.42),
        "cs_dance_pose": msg("/dance/pose", *[0.1 * i for i in range(51)]),
        "cs_set_meter": msg("/set_meter", 4),
        "cs_print_clock": msg("/print_clock", 1),
        "cs_reset_empty_array": bytes.fromhex("2f72657365740000" "2c5b5d00"),
        "cs_reset": msg("/reset"),
        "cs_play": msg("/play", "A", "tone.wav", 0.0),
        "cs_cue": msg("/cue", "B", "long.wav", 0.5),
        "cs_start_group": msg("/start_group", 4.0, "A", "B"),
        "cs_fade": msg("/fade", "A", 1.0, 2.0),
        "cs_schedule_c_at": msg("/schedule_c_at", 8.0),
        "cs_dummy_schedule": msg("/dummy", "schedule_c_at", 2.0),
        # native dialect
        "n_load": msg("/stemd/load", 1, "tone.wav", "tone"),
        "n_load_sub": msg("/stemd/load", 2, "sub/a.wav"),
        "n_load_streamed": msg("/stemd/load", 3, "long.wav"),
        "n_load_rate": msg("/stemd/load", 4, "rate44.wav"),
        "n_load_junk": msg("/stemd/load", 5, "junk.wav"),
        "n_load_symlink_escape": msg("/stemd/load", 6, "escape/hostname"),
        "n_unload": msg("/stemd/unload", 1),
        "n_play": msg("/stemd/play", 1, 0.8, 1, 0.01, "s"),
        "n_play_frac": msg("/stemd/play", 3, 1.0, 0, 0.5, "frac"),
        "n_play_frames": msg("/stemd/play", 3, 1.0, True, 20000.0, "frames"),
        "n_stop": msg("/stemd/stop", 1, 0.05),
        "n_pause": msg("/stemd/pause", 1, 0.01),
        "n_resume": msg("/stemd/resume", 1, 0.01),
        "n_seek": msg("/stemd/seek", 3, 0.2),
        "n_volume": msg("/stemd/volume", 1, 0.5, 0.1),
        "n_pan": msg("/stemd/pan", 1, -0.5, 0.1),
        "n_rate": msg("/stemd/rate", 1, 1.5, 0.1),
        "n_master": msg("/stemd/master", 0.9, 0.05),
        "n_deck": msg("/stemd/deck", "A", 0.7, 0.05),
        "n_list": msg("/stemd/list"),
        "n_voices": msg("/stemd/voices"),
        "n_status": msg("/stemd/status"),
        "n_notify_on": msg("/stemd/notify", 1),
        "n_notify_off": msg("/stemd/notify", 0),
        "n_ping": msg("/stemd/ping"),
        # every OSC type tag the structural check knows
        "types_all": msg("/stemd/ping", 1, 2.5, "s", ("S", s("sym")), ("b", struct.pack(">i", 3) + b"abc\0"),
                         ("h", struct.pack(">q", -5)), ("d", struct.pack(">d", 0.5)), ("t", struct.pack(">Q", 1)),
                         ("c", struct.pack(">i", 65)), ("m", b"\x00\x90\x40\x7f"), ("r", b"\xff\x00\x00\xff"),
                         True, False, None, ("I", b"")),
        # bundles
        "bundle_load_play": bundle(msg("/stemd/load", 7, "tone.wav"), msg("/stemd/play", 7), msg("/stemd/voices")),
        "bundle_crowdstream": bundle(msg("/load_buffer", 1100, "mono.wav"), msg("/play_stem", 1100),
                                     msg("/stem_volume", 1100, 0.3)),
        "bundle_timetag": bundle(msg("/stemd/ping"), timetag=(3900000000 << 32) | 0x80000000),
        "bundle_empty": bundle(),
        "bundle_nested": bundle(bundle(msg("/stemd/status")), msg("/stemd/ping")),
        "bundle_nested_deep": bundle(bundle(bundle(bundle(msg("/stemd/ping"))))),
        "bundle_nested_too_deep": bundle(bundle(bundle(bundle(bundle(msg("/stemd/ping")))))),
        "bundle_with_reset_array": bundle(bytes.fromhex("2f72657365740000" "2c5b5d00")),
        # malformed, one way each
        "bad_no_typetag": s("/stemd/ping"),
        "bad_unaligned": msg("/stemd/ping")[:-1],
        "bad_truncated_int": msg("/stemd/unload", 1)[:-4],
        "bad_unterminated": b"/stemd/pin",
        "bad_nan_volume": msg("/stemd/master", float("nan")),
        "bad_inf_rate": msg("/stemd/rate", 1, float("inf")),
        "bad_array_nonempty": msg("/reset", 1, tags=",[i]"),
        "bad_unknown_address": msg("/no/such/address", 1),
        "bad_bundle_size": b"#bundle\0" + struct.pack(">Q", 1) + struct.pack(">i", 64) + msg("/stemd/ping"),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name + ".osc"), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {out}")


if __name__ == "__main__":
    main()
