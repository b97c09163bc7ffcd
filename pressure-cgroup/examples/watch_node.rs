//! Watches every kubepods memory cgroup of this machine, as `pressured` does in node mode, and prints
//! the events (warn, critical, `predicted_oom`, `oom_killed`, `recovered`) as JSON lines.
//!
//! ```text
//! sudo cargo run -p pressure-cgroup --example watch_node [-- --root /sys/fs/cgroup] [--interval-ms 1000]
//! ```
//!
//! Default thresholds (warn 70 %, critical 85 % of the limit). Logs go to stderr (`RUST_LOG`, default
//! `info`). Ctrl-C or SIGTERM stops it through the watcher's [`StopToken`]: the library installs no
//! signal handler, so this example turns the signals into a stop the way a binary would. Events name
//! pods by UID and container ID; an embedder with API access passes an `Enrich` for names.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use pressure_cgroup::{CgroupLayout, Scope, StopToken, WatchOptions, Watcher};
use pressure_core::{Engine, Event, ThresholdsConfig};

fn main() -> Result<(), Box<dyn Error>> {
    let mut root = PathBuf::from("/sys/fs/cgroup");
    let mut interval = Duration::from_secs(1);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--root" => root = PathBuf::from(value()?),
            "--interval-ms" => interval = Duration::from_millis(value()?.parse()?),
            _ => {
                return Err(
                    format!("unknown argument {arg} (--root PATH, --interval-ms N)").into(),
                );
            }
        }
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let layout = CgroupLayout::detect(&root)?;
    let mut options = WatchOptions::new(Scope::Node);
    options.interval = interval;
    let mut watcher = Watcher::new(
        layout,
        Engine::new(&ThresholdsConfig::default(), false),
        options,
    )?;
    stop_on_signals(watcher.stop_token())?;
    watcher.run(&mut |event: &Event| println!("{}", event.to_json_line()))?;
    eprintln!("stopped");
    Ok(())
}

/// Blocks SIGINT and SIGTERM in every thread and stops the watcher from a thread that waits for them
/// with `sigwait`: no code runs in a signal handler, so `stop` may do anything.
fn stop_on_signals(stop: StopToken) -> std::io::Result<()> {
    // SAFETY: `set` is initialised by sigemptyset before use; the mask is set before any other
    // thread exists, so all later threads inherit it.
    let set = unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGINT);
        libc::sigaddset(&raw mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        set
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signal = 0;
            // SAFETY: `set` is a valid, initialised signal set; `signal` is a valid out-pointer.
            unsafe { libc::sigwait(&raw const set, &raw mut signal) };
            eprintln!("signal {signal}: stopping");
            stop.stop();
        })?;
    Ok(())
}
