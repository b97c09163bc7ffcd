//! Fuzzes the `--replay` line parser on arbitrary bytes: a bad line is an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(record)) = pressure_core::replay::parse_line_bytes(1, data) {
        // What the replay does with a record next: the key and an event timestamp must not panic.
        let _ = record.sample.target.key();
        let _ = humantime_check(record.sample.reading.timestamp);
    }
});

fn humantime_check(t: std::time::SystemTime) -> String {
    // The engine's events print RFC 3339 timestamps; `t` past year 9999 made this panic (issue 16).
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(secs <= 253_402_300_799, "{secs}");
    secs.to_string()
}
