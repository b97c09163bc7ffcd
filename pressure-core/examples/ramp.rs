//! Embedding the threshold engine: feed a container that grows toward its limit and print the events.
//!
//! Run with `cargo run -p pressure-core --example ramp`.

use std::time::{Duration, UNIX_EPOCH};

use pressure_core::{Config, Engine, Reading, Target};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Any pressured JSON config works; unknown keys and bad values are rejected naming the key.
    let config =
        Config::from_json(r#"{"thresholds": {"warn_percent": 70, "cooldown_seconds": 30}}"#)?;
    let mut engine = Engine::new(&config.thresholds, config.dry_run);
    let target = Target {
        namespace: Some("shop".into()),
        pod_name: Some("cart-0".into()),
        pod_uid: Some("5f0b3c1e-8a40-4c6e-9d8f-0c2b7a9e4d11".into()),
        container_name: Some("app".into()),
        ..Target::default()
    };
    // Track once, then feed readings by handle: the fast path of a poll loop.
    let id = engine.track(&target);
    let limit = 512 << 20;
    let mut events = Vec::new();
    for second in 0..60u64 {
        let used = (200 << 20) + second * (6 << 20);
        let reading = Reading {
            oom_kill_count: Some(0),
            ..Reading::new(
                UNIX_EPOCH + Duration::from_secs(second),
                used.min(limit),
                Some(limit),
            )
        };
        engine.observe(id, &reading, second as f64, &mut events);
        engine.end_cycle();
        for event in events.drain(..) {
            println!("{}", event.to_json_line());
        }
    }
    Ok(())
}
