//! Shared pieces of the criterion benchmarks in `benches/`.
//!
//! [`ThreadCpuTime`] measures the benchmark thread's CPU time instead of wall time: on a shared 2-vCPU CI
//! machine, time spent descheduled is not the code's cost, and goals here are stated "on one core".
#![deny(missing_docs)]

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// A criterion measurement of the calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadCpuTime;

static WALL: WallTime = WallTime;

/// The calling thread's CPU time so far.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID exists on every Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_time().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Same unit (nanoseconds) as wall time, so its formatter applies.
        WALL.formatter()
    }
}
