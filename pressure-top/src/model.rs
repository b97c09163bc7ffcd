//! The view model of `pressured top`: rows, trend, sorting, filtering, keys and formatting. Pure: no
//! terminal, no clock, no I/O; the live view ([`crate::run`]) and the plain table both read it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;

use pressure_core::{ContainerView, Severity};

/// The window of the trend column (MiB/min): the working set's change over the last minute.
pub const TREND_WINDOW_SECONDS: f64 = 60.0;
/// The most points a row keeps for its trend, whatever the poll interval (bounded by construction).
const TREND_MAX_POINTS: usize = 128;
/// The longest namespace filter typed at the `/` prompt.
const MAX_FILTER_CHARS: usize = 63;

/// One container as a source saw it in one poll cycle: what a row shows, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The engine's key of the container (rows are matched across cycles by it).
    pub key: String,
    /// Namespace (`-` when unknown).
    pub namespace: String,
    /// Pod name (the pod UID, else `-`, when unknown).
    pub pod: String,
    /// Container name (`-` when unknown).
    pub container: String,
    /// Working set in bytes; `None` before any reading.
    pub working_set_bytes: Option<u64>,
    /// Limit in bytes; `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// The threshold signal ÷ the limit; `None` when unlimited.
    pub usage_ratio: Option<f64>,
    /// Severity.
    pub severity: Severity,
    /// Seconds to OOM ([`pressure_core::Engine::eta`]), while a rise is evidenced.
    pub eta_seconds: Option<f64>,
    /// PSI memory `some` avg10, when known.
    pub psi_some_avg10: Option<f64>,
    /// OOM kills, when known.
    pub oom_kills: Option<u64>,
}

impl Entry {
    /// The entry of one engine view ([`pressure_core::Engine::containers`]).
    pub fn from_view(view: &ContainerView<'_>) -> Entry {
        let t = view.target;
        let text = |v: &Option<std::sync::Arc<str>>| v.as_deref().unwrap_or("-").to_owned();
        Entry {
            key: t.key(),
            namespace: text(&t.namespace),
            pod: t
                .pod_name
                .as_deref()
                .or(t.pod_uid.as_deref())
                .or(t.cgroup_path.as_deref().map(|p| p.trim_start_matches('/')))
                .unwrap_or("-")
                .to_owned(),
            container: text(&t.container_name),
            working_set_bytes: view.working_set_bytes,
            limit_bytes: view.limit_bytes,
            usage_ratio: view.usage_ratio,
            severity: view.severity,
            eta_seconds: view.eta_seconds,
            psi_some_avg10: view.psi_some_avg10,
            oom_kills: view.oom_kills,
        }
    }

    /// `namespace/pod/container`.
    pub fn name(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.pod, self.container)
    }
}

/// One row of the view: an entry and its trend.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The container's latest entry.
    pub entry: Entry,
    /// Working-set change over the last [`TREND_WINDOW_SECONDS`], in MiB/min; `None` until two
    /// readings some time apart.
    pub trend_mib_per_min: Option<f64>,
}

/// The column rows are sorted by; `s` cycles through them in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SortKey {
    /// Severity, then the nearest ETA, then the highest percentage (the default).
    Risk,
    /// Highest percentage of the limit first.
    Percent,
    /// Fastest growth first.
    Trend,
    /// Nearest ETA first (containers without one last).
    Eta,
    /// Largest working set first.
    WorkingSet,
    /// Most OOM kills first.
    Kills,
    /// `namespace/pod/container`, alphabetical.
    Name,
}

impl SortKey {
    const ALL: [SortKey; 7] = [
        SortKey::Risk,
        SortKey::Percent,
        SortKey::Trend,
        SortKey::Eta,
        SortKey::WorkingSet,
        SortKey::Kills,
        SortKey::Name,
    ];

    /// The next key in the cycle.
    pub fn next(self) -> SortKey {
        let i = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    /// The name shown in the header (`sort: risk`).
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Risk => "risk",
            SortKey::Percent => "percent",
            SortKey::Trend => "trend",
            SortKey::Eta => "eta",
            SortKey::WorkingSet => "working set",
            SortKey::Kills => "kills",
            SortKey::Name => "name",
        }
    }
}

/// A key press, independent of the terminal library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Backspace.
    Backspace,
    /// Ctrl-C.
    Interrupt,
}

/// What the view should do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Nothing changed.
    None,
    /// Draw again.
    Redraw,
    /// Leave.
    Quit,
}

/// Per-container history for the trend: (clock, working set), oldest first.
#[derive(Debug, Default)]
struct History {
    points: VecDeque<(f64, u64)>,
}

impl History {
    fn push(&mut self, t: f64, bytes: u64) {
        if self.points.back().is_some_and(|(last, _)| *last >= t) {
            self.points.pop_back();
        }
        self.points.push_back((t, bytes));
        while self.points.len() > TREND_MAX_POINTS
            || self
                .points
                .front()
                .is_some_and(|(first, _)| t - first > TREND_WINDOW_SECONDS)
                && self.points.len() > 2
        {
            self.points.pop_front();
        }
    }

    /// MiB/min from the oldest point in the window to the newest.
    fn trend(&self) -> Option<f64> {
        let (&(t0, b0), &(t1, b1)) = (self.points.front()?, self.points.back()?);
        let dt = t1 - t0;
        (dt > 0.0).then(|| (b1 as f64 - b0 as f64) / dt * 60.0 / MIB)
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// The state of `pressured top`: the latest rows, their trends, and the view's sort, filter and pause.
///
/// Feed it a cycle with [`update`](TopModel::update) and keys with [`key`](TopModel::key); read the
/// rows to show with [`rows`](TopModel::rows).
#[derive(Debug)]
pub struct TopModel {
    rows: Vec<Row>,
    history: HashMap<String, History>,
    /// The rows shown while paused.
    frozen: Option<Vec<Row>>,
    clock: Option<f64>,
    sort: SortKey,
    filter: Option<String>,
    /// The `/` prompt's text while it is open.
    editing: Option<String>,
    cycles: u64,
}

impl Default for TopModel {
    fn default() -> Self {
        TopModel::new()
    }
}

impl TopModel {
    /// An empty model sorted by risk, unfiltered, running.
    pub fn new() -> TopModel {
        TopModel {
            rows: Vec::new(),
            history: HashMap::new(),
            frozen: None,
            clock: None,
            sort: SortKey::Risk,
            filter: None,
            editing: None,
            cycles: 0,
        }
    }

    /// One poll cycle at clock `t` (seconds, any origin): the containers the source knows now. Rows
    /// of containers not in `entries` go (the engine forgot them), with their history. While paused
    /// the trends go on but the rows shown stay.
    pub fn update(&mut self, t: f64, entries: Vec<Entry>) {
        self.clock = Some(t);
        self.cycles += 1;
        let keys: BTreeSet<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        self.history.retain(|k, _| keys.contains(k.as_str()));
        self.rows = entries
            .into_iter()
            .map(|entry| {
                let history = self.history.entry(entry.key.clone()).or_default();
                if let Some(ws) = entry.working_set_bytes {
                    history.push(t, ws);
                }
                Row {
                    trend_mib_per_min: history.trend(),
                    entry,
                }
            })
            .collect();
    }

    /// The clock of the last cycle.
    pub fn clock(&self) -> Option<f64> {
        self.clock
    }

    /// Cycles seen.
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    /// The sort column.
    pub fn sort(&self) -> SortKey {
        self.sort
    }

    /// Sorts by `key`.
    pub fn set_sort(&mut self, key: SortKey) {
        self.sort = key;
    }

    /// The namespace filter (a case-insensitive substring), if any.
    pub fn filter(&self) -> Option<&str> {
        self.filter.as_deref()
    }

    /// Sets or clears the namespace filter; an empty one is none.
    pub fn set_filter(&mut self, filter: Option<&str>) {
        self.filter = filter
            .filter(|f| !f.is_empty())
            .map(|f| f.chars().take(MAX_FILTER_CHARS).collect());
    }

    /// The `/` prompt's text while it is open.
    pub fn editing(&self) -> Option<&str> {
        self.editing.as_deref()
    }

    /// Whether the view is paused.
    pub fn paused(&self) -> bool {
        self.frozen.is_some()
    }

    /// Pauses (freezes the rows shown) or resumes.
    pub fn toggle_pause(&mut self) {
        self.frozen = match self.frozen.take() {
            Some(_) => None,
            None => Some(self.rows.clone()),
        };
    }

    /// The namespaces of the current rows, sorted.
    pub fn namespaces(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self
            .rows
            .iter()
            .map(|r| r.entry.namespace.as_str())
            .collect();
        set.into_iter().collect()
    }

    /// All rows (before the filter) of the current view: the frozen ones while paused.
    fn all_rows(&self) -> &[Row] {
        self.frozen.as_deref().unwrap_or(&self.rows)
    }

    /// How many containers the view has before the filter.
    pub fn total(&self) -> usize {
        self.all_rows().len()
    }

    /// The rows to show: filtered by namespace, sorted by the sort column (ties by name).
    pub fn rows(&self) -> Vec<&Row> {
        let needle = self.filter.as_deref().map(str::to_lowercase);
        let mut rows: Vec<&Row> = self
            .all_rows()
            .iter()
            .filter(|r| {
                needle
                    .as_deref()
                    .is_none_or(|n| r.entry.namespace.to_lowercase().contains(n))
            })
            .collect();
        let sort = self.sort;
        rows.sort_by(|a, b| compare(sort, a, b).then_with(|| by_name(a, b)));
        rows
    }

    /// Applies a key: `s` next sort column, `/` namespace prompt (Enter keeps, Esc clears), `n` next
    /// namespace (cycles back to all), `p` or space pause, `q` or Ctrl-C quit.
    pub fn key(&mut self, key: Key) -> Action {
        if key == Key::Interrupt {
            return Action::Quit;
        }
        if let Some(text) = &mut self.editing {
            match key {
                Key::Char(c) if !c.is_control() => {
                    if text.chars().count() < MAX_FILTER_CHARS {
                        text.push(c);
                    }
                }
                Key::Backspace => {
                    text.pop();
                }
                Key::Enter => {
                    let text = self.editing.take().unwrap_or_default();
                    self.set_filter(Some(text.trim()));
                }
                Key::Esc => {
                    self.editing = None;
                    self.filter = None;
                }
                _ => return Action::None,
            }
            return Action::Redraw;
        }
        match key {
            Key::Char('q') => Action::Quit,
            Key::Char('s') => {
                self.sort = self.sort.next();
                Action::Redraw
            }
            Key::Char('p' | ' ') => {
                self.toggle_pause();
                Action::Redraw
            }
            Key::Char('/') => {
                self.editing = Some(String::new());
                Action::Redraw
            }
            Key::Char('n') => {
                let namespaces = self.namespaces();
                let next = match &self.filter {
                    None => namespaces.first().copied(),
                    Some(f) => namespaces
                        .iter()
                        .position(|n| n == f)
                        .and_then(|i| namespaces.get(i + 1))
                        .copied(),
                };
                let next = next.map(str::to_owned);
                self.set_filter(next.as_deref());
                Action::Redraw
            }
            Key::Esc if self.filter.is_some() => {
                self.filter = None;
                Action::Redraw
            }
            _ => Action::None,
        }
    }

    /// The status line: clock, counts, sort, filter, pause.
    pub fn status(&self) -> String {
        let shown = self.rows().len();
        let mut s = format!(
            "{shown}/{} containers  sort: {}",
            self.total(),
            self.sort.as_str()
        );
        if let Some(f) = &self.filter {
            let _ = write!(s, "  namespace: {f}");
        }
        if let Some(text) = &self.editing {
            let _ = write!(s, "  filter namespace: {text}_");
        }
        if self.paused() {
            s.push_str("  PAUSED");
        }
        s
    }

    /// The plain table of the rows shown (what `pressured top --once` prints, and the view without a
    /// terminal): a header line and one line per row, columns separated by spaces.
    pub fn plain_table(&self) -> String {
        let rows = self.rows();
        let mut lines: Vec<[String; COLUMNS]> = vec![HEADERS.map(str::to_owned)];
        lines.extend(rows.iter().map(|r| {
            let mut cells = cells(r);
            cells[2] = format!("[{}]", bar(r.entry.usage_ratio, BAR_WIDTH, '#', '.'));
            cells
        }));
        let mut widths = [0usize; COLUMNS];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in &lines {
            let mut text = String::new();
            for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                if i == 0 || i == 2 || i == COLUMNS - 1 {
                    let _ = write!(text, "{cell:<w$}");
                } else {
                    let _ = write!(text, "{cell:>w$}");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Number of columns of the table.
pub const COLUMNS: usize = 9;
/// The column headers.
pub const HEADERS: [&str; COLUMNS] = [
    "NAMESPACE/POD/CONTAINER",
    "WORKING SET/LIMIT",
    "USAGE",
    "%",
    "TREND",
    "ETA",
    "PSI",
    "KILLS",
    "SEVERITY",
];
/// Width of the usage bar, in cells.
pub const BAR_WIDTH: usize = 20;

/// The text cells of a row, in [`HEADERS`] order; the bar cell is empty (the renderer draws it).
pub fn cells(row: &Row) -> [String; COLUMNS] {
    let e = &row.entry;
    [
        e.name(),
        format!(
            "{}/{}",
            e.working_set_bytes.map_or("-".into(), format_bytes),
            e.limit_bytes.map_or("none".into(), format_bytes)
        ),
        String::new(),
        e.usage_ratio
            .map_or("-".into(), |r| format!("{:.1}", r * 100.0)),
        row.trend_mib_per_min.map_or("-".into(), format_trend),
        e.eta_seconds.map_or("-".into(), format_eta),
        e.psi_some_avg10.map_or("-".into(), |p| format!("{p:.1}")),
        e.oom_kills.map_or("-".into(), |k| k.to_string()),
        e.severity.as_str().to_owned(),
    ]
}

/// A bar of `width` cells, `ratio` of them `full` (capped at the width), the rest `empty`; blank
/// when unlimited.
pub fn bar(ratio: Option<f64>, width: usize, full: char, empty: char) -> String {
    let Some(ratio) = ratio else {
        return " ".repeat(width);
    };
    let n = ((ratio.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    std::iter::repeat_n(full, n)
        .chain(std::iter::repeat_n(empty, width - n))
        .collect()
}

/// Bytes in binary units with three significant digits: `512B`, `1.5Ki`, `300Mi`, `2.00Gi`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["Ki", "Mi", "Gi", "Ti", "Pi"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let u = UNITS[unit];
    if v >= 100.0 {
        format!("{v:.0}{u}")
    } else if v >= 10.0 {
        format!("{v:.1}{u}")
    } else {
        format!("{v:.2}{u}")
    }
}

/// A trend in MiB/min with its sign: `+12.5`, `-0.3`, `0.0`.
pub fn format_trend(mib_per_min: f64) -> String {
    if mib_per_min.abs() < 0.05 {
        "0.0".into()
    } else {
        format!("{mib_per_min:+.1}")
    }
}

/// An ETA as `45s`, `12m05s`, `3h20m`, `>99h`.
pub fn format_eta(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 100 * 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        ">99h".into()
    }
}

fn by_name(a: &Row, b: &Row) -> std::cmp::Ordering {
    (&a.entry.namespace, &a.entry.pod, &a.entry.container).cmp(&(
        &b.entry.namespace,
        &b.entry.pod,
        &b.entry.container,
    ))
}

/// Descending by an optional value, `None` last.
fn desc(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Less,
        (None, Some(_)) => Greater,
        (None, None) => Equal,
    }
}

fn compare(key: SortKey, a: &Row, b: &Row) -> std::cmp::Ordering {
    let (x, y) = (&a.entry, &b.entry);
    let eta = |e: &Entry| e.eta_seconds.map(|s| -s);
    match key {
        SortKey::Risk => y
            .severity
            .cmp(&x.severity)
            .then_with(|| desc(eta(x), eta(y)))
            .then_with(|| desc(x.usage_ratio, y.usage_ratio)),
        SortKey::Percent => desc(x.usage_ratio, y.usage_ratio),
        SortKey::Trend => desc(a.trend_mib_per_min, b.trend_mib_per_min),
        SortKey::Eta => desc(eta(x), eta(y)),
        SortKey::WorkingSet => desc(
            x.working_set_bytes.map(|v| v as f64),
            y.working_set_bytes.map(|v| v as f64),
        ),
        SortKey::Kills => desc(x.oom_kills.map(|v| v as f64), y.oom_kills.map(|v| v as f64)),
        SortKey::Name => std::cmp::Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ns: &str, pod: &str, ws: u64, limit: Option<u64>, sev: Severity) -> Entry {
        Entry {
            key: format!("{ns}/{pod}"),
            namespace: ns.into(),
            pod: pod.into(),
            container: "app".into(),
            working_set_bytes: Some(ws),
            limit_bytes: limit,
            usage_ratio: limit.map(|l| ws as f64 / l as f64),
            severity: sev,
            eta_seconds: None,
            psi_some_avg10: None,
            oom_kills: Some(0),
        }
    }

    fn names(model: &TopModel) -> Vec<String> {
        model.rows().iter().map(|r| r.entry.pod.clone()).collect()
    }

    fn sample_model() -> TopModel {
        let mut m = TopModel::new();
        let mut leaking = entry("shop", "cart", 600 << 20, Some(1000 << 20), Severity::Ok);
        leaking.eta_seconds = Some(120.0);
        let mut killed = entry("batch", "etl", 100 << 20, Some(200 << 20), Severity::Ok);
        killed.oom_kills = Some(3);
        m.update(
            0.0,
            vec![
                entry(
                    "shop",
                    "search",
                    900 << 20,
                    Some(1000 << 20),
                    Severity::Critical,
                ),
                entry("shop", "web", 750 << 20, Some(1000 << 20), Severity::Warn),
                leaking.clone(),
                killed.clone(),
                entry("batch", "free", 5 << 30, None, Severity::Ok),
            ],
        );
        leaking.working_set_bytes = Some(660 << 20);
        m.update(
            30.0,
            vec![
                entry(
                    "shop",
                    "search",
                    900 << 20,
                    Some(1000 << 20),
                    Severity::Critical,
                ),
                entry("shop", "web", 750 << 20, Some(1000 << 20), Severity::Warn),
                leaking,
                killed,
                entry("batch", "free", 5 << 30, None, Severity::Ok),
            ],
        );
        m
    }

    #[test]
    fn risk_puts_severity_then_eta_then_percent_first() {
        let m = sample_model();
        assert_eq!(names(&m), ["search", "web", "cart", "etl", "free"]);
    }

    #[test]
    fn s_cycles_the_sort_columns() {
        let mut m = sample_model();
        assert_eq!(m.key(Key::Char('s')), Action::Redraw);
        assert_eq!(m.sort(), SortKey::Percent);
        assert_eq!(names(&m), ["search", "web", "cart", "etl", "free"]);
        m.key(Key::Char('s'));
        assert_eq!(m.sort(), SortKey::Trend);
        assert_eq!(names(&m)[0], "cart", "the only one growing");
        m.key(Key::Char('s'));
        assert_eq!(names(&m)[0], "cart", "the only ETA");
        m.key(Key::Char('s'));
        assert_eq!(names(&m)[0], "free", "largest working set");
        m.key(Key::Char('s'));
        assert_eq!(names(&m)[0], "etl", "most kills");
        m.key(Key::Char('s'));
        assert_eq!(names(&m), ["etl", "free", "cart", "search", "web"]);
        m.key(Key::Char('s'));
        assert_eq!(m.sort(), SortKey::Risk, "cycles back");
    }

    #[test]
    fn trend_is_mib_per_minute_over_the_window() {
        let m = sample_model();
        let cart = m
            .rows()
            .into_iter()
            .find(|r| r.entry.pod == "cart")
            .unwrap();
        // 60 MiB in 30 s.
        assert_eq!(cart.trend_mib_per_min, Some(120.0));
        let web = m.rows().into_iter().find(|r| r.entry.pod == "web").unwrap();
        assert_eq!(web.trend_mib_per_min, Some(0.0));
        // One point: no trend.
        let mut one = TopModel::new();
        one.update(0.0, vec![entry("a", "b", 1, None, Severity::Ok)]);
        assert_eq!(one.rows()[0].trend_mib_per_min, None);
    }

    #[test]
    fn history_is_bounded_and_windowed() {
        let mut h = History::default();
        for t in 0..10_000 {
            h.push(t as f64 * 0.1, t);
        }
        assert!(h.points.len() <= TREND_MAX_POINTS);
        let mut h = History::default();
        for t in 0..200 {
            h.push(t as f64, t * MIB as u64);
        }
        assert!(h.points.back().unwrap().0 - h.points.front().unwrap().0 <= TREND_WINDOW_SECONDS);
        assert_eq!(h.trend(), Some(60.0));
    }

    #[test]
    fn gone_containers_leave_with_their_history() {
        let mut m = sample_model();
        m.update(60.0, vec![entry("shop", "web", 1, Some(2), Severity::Ok)]);
        assert_eq!(names(&m), ["web"]);
        assert_eq!(m.history.len(), 1);
    }

    #[test]
    fn namespace_filter_by_prompt_and_by_n() {
        let mut m = sample_model();
        m.key(Key::Char('/'));
        for c in "BAT".chars() {
            m.key(Key::Char(c));
        }
        assert!(
            m.status().contains("filter namespace: BAT_"),
            "{}",
            m.status()
        );
        assert_eq!(
            m.key(Key::Char('q')),
            Action::Redraw,
            "q is text at the prompt"
        );
        m.key(Key::Backspace);
        m.key(Key::Enter);
        assert_eq!(m.filter(), Some("BAT"));
        assert_eq!(names(&m), ["etl", "free"]);
        m.key(Key::Esc);
        assert_eq!(m.filter(), None);
        m.key(Key::Char('n'));
        assert_eq!(m.filter(), Some("batch"));
        m.key(Key::Char('n'));
        assert_eq!(m.filter(), Some("shop"));
        assert_eq!(names(&m), ["search", "web", "cart"]);
        assert!(m.status().starts_with("3/5 containers"), "{}", m.status());
        m.key(Key::Char('n'));
        assert_eq!(m.filter(), None, "cycles back to all");
        // Esc at the prompt clears.
        m.key(Key::Char('/'));
        m.key(Key::Char('x'));
        m.key(Key::Esc);
        assert_eq!((m.filter(), m.editing()), (None, None));
    }

    #[test]
    fn pause_freezes_the_rows_and_quit_keys_quit() {
        let mut m = sample_model();
        m.key(Key::Char(' '));
        assert!(m.paused());
        m.update(90.0, vec![entry("x", "new", 1, None, Severity::Ok)]);
        assert_eq!(names(&m).len(), 5, "frozen");
        assert!(m.status().contains("PAUSED"));
        m.key(Key::Char('p'));
        assert_eq!(names(&m), ["new"]);
        assert_eq!(m.key(Key::Char('q')), Action::Quit);
        assert_eq!(m.key(Key::Interrupt), Action::Quit);
        m.key(Key::Char('/'));
        assert_eq!(m.key(Key::Interrupt), Action::Quit, "also at the prompt");
        assert_eq!(m.key(Key::Char('z')), Action::Redraw);
    }

    #[test]
    fn formats() {
        assert_eq!(format_bytes(512), "512B");
        assert_eq!(format_bytes(1536), "1.50Ki");
        assert_eq!(format_bytes(300 << 20), "300Mi");
        assert_eq!(format_bytes(1000 << 20), "1000Mi");
        assert_eq!(format_bytes(2 << 30), "2.00Gi");
        assert_eq!(format_bytes(15 << 30), "15.0Gi");
        assert_eq!(format_eta(44.6), "45s");
        assert_eq!(format_eta(725.0), "12m05s");
        assert_eq!(format_eta(12_000.0), "3h20m");
        assert_eq!(format_eta(1e9), ">99h");
        assert_eq!(format_trend(12.46), "+12.5");
        assert_eq!(format_trend(-0.3), "-0.3");
        assert_eq!(format_trend(0.01), "0.0");
        assert_eq!(bar(Some(0.5), 10, '#', '.'), "#####.....");
        assert_eq!(bar(Some(1.7), 4, '#', '.'), "####");
        assert_eq!(bar(None, 3, '#', '.'), "   ");
    }

    #[test]
    fn plain_table_has_a_header_and_a_line_per_row() {
        let m = sample_model();
        let table = m.plain_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert!(lines[0].starts_with("NAMESPACE/POD/CONTAINER"), "{table}");
        assert!(
            lines[0].contains("ETA") && lines[0].contains("KILLS"),
            "{table}"
        );
        let search = lines[1];
        assert!(search.starts_with("shop/search/app "), "{table}");
        assert!(search.contains("900Mi/1000Mi"), "{table}");
        assert!(search.contains("[##################..]"), "{table}");
        assert!(
            search.contains("90.0") && search.ends_with("critical"),
            "{table}"
        );
        let cart = lines[3];
        assert!(cart.contains("+120.0") && cart.contains("2m00s"), "{table}");
        let free = lines[5];
        assert!(
            free.contains("5.00Gi/none") && free.ends_with("ok"),
            "{table}"
        );
    }
}
