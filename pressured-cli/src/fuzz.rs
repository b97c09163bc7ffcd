//! A stable-toolchain stand-in for the cargo-fuzz targets in `pressured-cli/fuzz` (which need nightly
//! and cargo-fuzz): a seeded mutation loop over the replay line parser and the configuration loader,
//! with the same checks as the targets. Ignored by default (not in CI); `scripts/fuzz.sh` runs them, for
//! `PRESSURED_FUZZ_SECONDS` each (default 5), and prints the iterations and the seed.

use std::time::{Duration, Instant};

use crate::config::FileConfig;

/// Values that have broken parsers before (issue 16) or sit on a boundary.
const TOKENS: &[&str] = &[
    "1e30",
    "1e12",
    "-1",
    "0",
    "-0",
    "1e308",
    "1e-320",
    "253402300799",
    "253402300800",
    "18446744073709551615",
    "18446744073709551616",
    "2305843009213693952",
    "1048577",
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"t\"",
    "\"pod\"",
    "\"namespace\"",
    "\"queue_capacity\"",
    "\"timeout_ms\"",
    "\"annotations\"",
    "\u{ff}",
    "#",
];

const CONFIG_SEEDS: &[&str] = &[
    "{}",
    r#"{"thresholds":{"warn_percent":65,"critical_percent":90},"dry_run":true}"#,
    r#"{"actions":{"queue_capacity":16,"exec":[{"command":["true"],"events":["oom_killed"],"timeout_ms":10}],
        "webhook":[{"url":"http://x/","headers":{"A":"b"},"retries":1}],"heap_profile":{"max_bytes":1}}}"#,
    r#"{"plugins":{"lua":{"enabled":true,"inline_script":"function on_event() end","timeout_ms":1,
        "memory_limit_bytes":1}},"storage":{"enabled":true,"backend":"s3","s3":{"bucket":"b"}}}"#,
    r#"{"source":{"mode":"kubelet","poll_interval_ms":100},"log_level":"debug","kubernetes":{}}"#,
];

/// xorshift64*: deterministic from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.insert(at, rng.next() as u8),
            2 if !data.is_empty() => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                data.splice(at..at, t.iter().copied());
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let to = (from + rng.below(64)).min(other.len());
                data.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                // Replace a number with a token.
                if let Some(i) = data.iter().position(|b| b.is_ascii_digit()) {
                    let end = data[i..]
                        .iter()
                        .position(|b| !b.is_ascii_digit() && *b != b'.')
                        .map_or(data.len(), |n| i + n);
                    let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                    data.splice(i..end, t.iter().copied());
                }
            }
        }
    }
    data
}

/// Runs `check` on mutated inputs for the configured time; a panic names the input and the seed.
fn run(name: &str, seeds: Vec<Vec<u8>>, check: impl Fn(&[u8])) {
    let secs: u64 = std::env::var("PRESSURED_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed = std::env::var("PRESSURED_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1)
        });
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut iterations = 0u64;
    while Instant::now() < deadline {
        for _ in 0..256 {
            let input = mutate(&mut rng, &seeds);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
            assert!(
                result.is_ok(),
                "{name}: panicked on {:?} (PRESSURED_FUZZ_SEED={seed})",
                String::from_utf8_lossy(&input)
            );
            iterations += 1;
        }
    }
    eprintln!("fuzz {name}: {iterations} inputs in {secs} s clean (PRESSURED_FUZZ_SEED={seed})");
}

/// Same checks as `fuzz/fuzz_targets/replay_line.rs`.
fn check_replay_line(data: &[u8]) {
    if let Ok(Some(record)) = pressure_core::replay::parse_line_bytes(1, data) {
        let _ = record.sample.target.key();
        let secs = record
            .sample
            .reading
            .timestamp
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // Event timestamps are RFC 3339; past year 9999 they cannot be printed (issue 16).
        assert!(secs <= 253_402_300_799, "{secs}");
    }
}

/// Same checks as `fuzz/fuzz_targets/config.rs`.
fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match FileConfig::from_json(text) {
        Ok(c) => {
            let again = FileConfig::from_json(&c.to_json_pretty()).expect("round trip");
            assert_eq!(again, c);
            let _ = c.split();
        }
        Err(e) => {
            let _ = e.key();
        }
    }
}

#[test]
#[ignore = "a fuzz loop: run by scripts/fuzz.sh"]
fn fuzz_replay_line() {
    let seeds = include_str!("../../examples/replay-timeline.jsonl")
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .collect();
    run("replay_line", seeds, check_replay_line);
}

#[test]
#[ignore = "a fuzz loop: run by scripts/fuzz.sh"]
fn fuzz_config() {
    let seeds = CONFIG_SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
    run("config", seeds, check_config);
}

/// The loop itself works: a check that panics on a seed is caught and reported.
#[test]
#[should_panic(expected = "panicked on")]
fn the_loop_reports_a_panicking_input() {
    run("self-test", vec![b"x".to_vec()], |_| panic!("boom"));
}
