//! Fuzzes the profile decoder and the `top` aggregation on arbitrary (raw or gzip) input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pressure_pprof::{Limits, Profile, TopOptions, top};

fuzz_target!(|data: &[u8]| {
    // Small caps keep each run fast; the caps themselves are part of what is tested.
    let limits = Limits::new(1 << 20, 4 << 20);
    if let Ok(profile) = Profile::decode(data, &limits) {
        for (index, node_count, cum) in [(None, 0, false), (Some("0".to_owned()), 3, true)] {
            if let Ok(report) = top(&profile, &TopOptions::new(index, node_count, cum)) {
                let _ = report.to_text();
            }
        }
    }
});
