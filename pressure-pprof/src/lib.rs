//! Reads pprof profiles and reports the top consumers exactly like `go tool pprof -top`.
//!
//! Heap profiles captured from a pod under memory pressure only help if someone can see what holds
//! the memory. This crate decodes `profile.proto` (gzip-compressed or raw, as written by Go's
//! `runtime/pprof` and other pprof producers) into a compact [`Profile`], and [`top`] aggregates it
//! into a [`Report`] of typed [`Row`]s with the same numbers, order, trimming and text as
//! `go tool pprof -top` (Go 1.19's vendored pprof).
//!
//! ```no_run
//! use pressure_pprof::{Limits, Profile, TopOptions, top};
//!
//! let bytes = std::fs::read("heap.pb.gz")?;
//! let profile = Profile::decode(&bytes, &Limits::default())?;
//! let report = top(&profile, &TopOptions::default())?;
//! for row in &report.rows {
//!     println!("{} {} {}", row.name, report.format_value(row.flat), report.format_value(row.cum));
//! }
//! print!("{}", report.to_text());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Main types: [`Profile`] (decoded profile) with [`Limits`] (caps against hostile input),
//! [`TopOptions`], [`Report`], [`Row`], [`Inline`], and [`PprofError`].
//!
//! Profiles come from pods we do not trust: the input size, the decompressed size (a gzip bomb
//! stops at the cap, with bounded memory) and every index are checked, and corrupt or truncated
//! input yields a [`PprofError`] naming the field, never a panic.
#![deny(missing_docs)]

mod decode;
mod diff;
mod error;
mod format;
mod fxhash;
mod names;
mod profile;
mod proto;
mod pruning;
mod source;
mod top;

pub use error::PprofError;
pub use profile::{Limits, Profile, SampleType};
pub use top::{Inline, Report, Row, TopOptions, top};
