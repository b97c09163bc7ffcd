//! `pressured top`: a live terminal view of the containers closest to OOM.
//!
//! - [`TopModel`] is the view model, pure and unit-tested: one [`Row`] per container ([`Entry`] from
//!   an engine view, plus a working-set trend in MiB/min), sorted by a [`SortKey`] (risk by default),
//!   filtered by namespace, paused or not, driven by [`Key`]s; [`TopModel::plain_table`] is the text
//!   printed without a terminal.
//! - [`run`] is the live view (ratatui with the crossterm backend): it draws the model, feeds it the
//!   [`Update`]s a source sends over a channel (one per poll cycle) and the keys typed, until `q` or
//!   Ctrl-C. [`render`] draws one frame.
//!
//! The sources (replay, cgroup tree, cluster) are wired by the `pressured` binary; this crate reads no
//! files and opens no connections.
#![deny(missing_docs)]

mod model;
mod ui;

pub use model::{
    Action, BAR_WIDTH, COLUMNS, Entry, HEADERS, Key, Row, SortKey, TREND_WINDOW_SECONDS, TopModel,
    bar, cells, format_bytes, format_eta, format_trend,
};
pub use ui::{TopError, Update, render, run};
