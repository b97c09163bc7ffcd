//! Fuzzes the `pressured` configuration loader (the binary's own `config.rs`, all eight sections and
//! their validation) on arbitrary UTF-8: an error names a key, nothing panics, and a valid file's
//! effective configuration parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// What `config.rs` needs from the binary's `sink` module.
mod sink {
    #[derive(Debug, Clone)]
    pub(crate) struct ActionsSetup {
        pub(crate) config: pressure_actions::DispatchConfig,
        pub(crate) script_config: serde_json::Value,
    }
}

#[path = "../../src/config.rs"]
#[allow(dead_code, unreachable_pub)]
mod config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::FileConfig::from_json(text) {
        Ok(c) => {
            let again = config::FileConfig::from_json(&c.to_json_pretty()).expect("round trip");
            assert_eq!(again, c);
            let _ = c.split();
        }
        Err(e) => {
            let _ = e.key();
        }
    }
});
