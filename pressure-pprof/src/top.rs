//! The `top` report: flat and cumulative values per function, as `go tool pprof -top` computes them.
//!
//! This follows google/pprof as vendored by Go 1.19 (`internal/report/report.go`: `newTrimmedGraph`,
//! `selectOutputUnit`, `TextItems`, `printText`, `reportLabels`; `internal/graph/graph.go`: `newGraph`,
//! `SortNodes`, `TrimLowFrequencyEdges`) with the driver defaults of the `top` command
//! (granularity `functions`, inlined frames kept, `nodefraction` 0.005, `edgefraction` 0.001,
//! `nodecount` unlimited).

use std::collections::hash_map::Entry;
use std::io::Write;

use crate::format::{base_name, go_time_utc, percentage, ratio_pct, scale, scaled_label};
use crate::fxhash::FxHashMap;
use crate::{PprofError, Profile, SampleType};

/// Options of a `top` report, mirroring `go tool pprof -top` flags.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TopOptions {
    /// `-sample_index`: a sample type name or number; `None` uses the profile's
    /// `default_sample_type`, else the last sample type.
    pub sample_index: Option<String>,
    /// `-nodecount`: show at most this many functions; 0 shows all (the `top` default).
    pub node_count: usize,
    /// `-cum`: sort by cumulative instead of flat value.
    pub cum: bool,
    /// `-nodefraction`: hide functions whose cumulative value is below this share of the total.
    /// Default 0.005.
    pub node_fraction: f64,
    /// `-edgefraction`: ignore call edges below this share of the total when deciding the
    /// "(inline)" marks. Default 0.001.
    pub edge_fraction: f64,
}

impl Default for TopOptions {
    fn default() -> Self {
        TopOptions {
            sample_index: None,
            node_count: 0,
            cum: false,
            node_fraction: 0.005,
            edge_fraction: 0.001,
        }
    }
}

impl TopOptions {
    /// Options with `sample_index`, `node_count` and `cum` set and pprof's default fractions.
    pub fn new(sample_index: Option<String>, node_count: usize, cum: bool) -> Self {
        TopOptions {
            sample_index,
            node_count,
            cum,
            ..TopOptions::default()
        }
    }
}

/// Whether a function was reached through inlined calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inline {
    /// Only called normally (no mark).
    No,
    /// Only inlined into its callers: `(inline)`.
    Inline,
    /// Both inlined and called: `(partial-inline)`.
    Partial,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Function name as pprof prints it.
    pub name: String,
    /// Value of samples whose leaf frame is this function.
    pub flat: i64,
    /// `flat` as a percentage of the report total.
    pub flat_pct: f64,
    /// Running sum of `flat` down to this row, as a percentage of the total.
    pub sum_pct: f64,
    /// Value of samples with this function anywhere on the stack (counted once per sample).
    pub cum: i64,
    /// `cum` as a percentage of the total.
    pub cum_pct: f64,
    /// Inlining mark.
    pub inline: Inline,
}

/// The result of [`top`]: typed rows plus what is needed to render pprof's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The sample type reported on.
    pub sample_type: SampleType,
    /// Sum of the absolute sample values (pprof's total).
    pub total: i64,
    /// Sum of `flat` over the rows shown.
    pub flat_sum: i64,
    /// Functions hidden because their cumulative value was below the node cutoff.
    pub dropped_nodes: usize,
    /// The cumulative value below which functions were hidden (`total` × `node_fraction`).
    pub dropped_cutoff: i64,
    /// Functions left after the cutoff, before `node_count` was applied.
    pub nodes_before_limit: usize,
    /// The rows, sorted by flat (or cum) value, then name.
    pub rows: Vec<Row>,
    /// Unit that values are printed in (e.g. `MB`, `ms`, `count`).
    pub output_unit: String,
    /// Header lines before the `Showing nodes …` line (`File:`, `Type:`, `Time:` …).
    pub header: Vec<String>,
}

impl Report {
    /// Formats a value in the report's sample unit like pprof (`1.50MB`, `10ms`, `42`).
    pub fn format_value(&self, value: i64) -> String {
        scaled_label(value, &self.sample_type.unit, &self.output_unit)
    }

    /// The lines pprof prints above the table: profile header and trimming summary.
    pub fn labels(&self) -> Vec<String> {
        let mut out = self.header.clone();
        out.push(format!(
            "Showing nodes accounting for {}, {} of {} total",
            self.format_value(self.flat_sum),
            percentage(self.flat_sum, self.total).trim(),
            self.format_value(self.total)
        ));
        if self.total != 0 {
            if self.dropped_nodes > 0 {
                out.push(format!(
                    "Dropped {} {} (cum <= {})",
                    self.dropped_nodes,
                    if self.dropped_nodes > 1 {
                        "nodes"
                    } else {
                        "node"
                    },
                    self.format_value(self.dropped_cutoff)
                ));
            }
            if !self.rows.is_empty() && self.rows.len() < self.nodes_before_limit {
                out.push(format!(
                    "Showing top {} nodes out of {}",
                    self.rows.len(),
                    self.nodes_before_limit
                ));
            }
        }
        out
    }

    /// Writes the report exactly as `go tool pprof -top` prints it.
    pub fn write_text(&self, w: &mut impl Write) -> std::io::Result<()> {
        for line in self.labels() {
            writeln!(w, "{line}")?;
        }
        writeln!(
            w,
            "{:>10} {:>5}% {:>5}% {:>10} {:>5}%",
            "flat", "flat", "sum", "cum", "cum"
        )?;
        let mut sum = 0i64;
        for row in &self.rows {
            sum = sum.wrapping_add(row.flat);
            let mark = match row.inline {
                Inline::No => "",
                Inline::Inline => " (inline)",
                Inline::Partial => " (partial-inline)",
            };
            writeln!(
                w,
                "{:>10} {} {} {:>10} {}  {}{}",
                self.format_value(row.flat),
                percentage(row.flat, self.total),
                percentage(sum, self.total),
                self.format_value(row.cum),
                percentage(row.cum, self.total),
                row.name,
                mark
            )?;
        }
        Ok(())
    }

    /// The text of [`Report::write_text`] as a string.
    pub fn to_text(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_text(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A call edge between two nodes, as pprof's `Edge`.
struct EdgeAcc {
    dst: u32,
    weight: i64,
    inline: bool,
    /// Last sample that touched the edge (pprof counts an edge once per sample).
    last: u32,
}

/// Node values of one graph build.
struct Graph {
    flat: Vec<i64>,
    cum: Vec<i64>,
    edges: Vec<EdgeAcc>,
}

impl Graph {
    fn present(&self, n: usize) -> bool {
        self.cum[n] != 0 || self.flat[n] != 0
    }
}

/// Samples below which one thread builds the graph: a second one costs more than it saves.
const PARALLEL_ABOVE: usize = 100_000;

/// pprof's `newGraph`: walks every sample from root to leaf, adding its value once to every node
/// on the stack and to the leaf's flat value; frames of nodes outside `kept` are skipped (and a
/// skipped leaf gets no flat value).
///
/// Edges are only collected into the nodes marked in `edges_into` (none when `None`): the report
/// uses them for the inline marks alone, and a node that is never an inlined frame gets no mark
/// whatever its edges weigh, so most edge look-ups can be skipped.
///
/// A large profile is walked in two halves on two threads and the halves are added up: every sum
/// is a wrapping addition and an edge's inline flag an "and", so the result is the same as one walk.
fn build_graph(
    p: &Profile,
    index: usize,
    kept: Option<&[bool]>,
    edges_into: Option<&[bool]>,
) -> Graph {
    let n = p.sample_count();
    let parallel =
        n >= PARALLEL_ABOVE && std::thread::available_parallelism().is_ok_and(|c| c.get() > 1);
    if !parallel {
        return walk(p, index, kept, edges_into, 0..n).0;
    }
    let (mut g, mut map, (h, h_map)) = std::thread::scope(|scope| {
        let second = scope.spawn(|| walk(p, index, kept, edges_into, n / 2..n));
        let (g, map) = walk(p, index, kept, edges_into, 0..n / 2);
        // A panic in the walk is a bug; pass it on.
        let second = second
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (g, map, second)
    });
    for (a, b) in g.flat.iter_mut().zip(&h.flat) {
        *a = a.wrapping_add(*b);
    }
    for (a, b) in g.cum.iter_mut().zip(&h.cum) {
        *a = a.wrapping_add(*b);
    }
    for (key, i) in h_map {
        let e = &h.edges[i as usize];
        match map.entry(key) {
            Entry::Occupied(o) => {
                let mine = &mut g.edges[*o.get() as usize];
                mine.weight = mine.weight.wrapping_add(e.weight);
                mine.inline &= e.inline;
            }
            Entry::Vacant(v) => {
                v.insert(g.edges.len() as u32);
                g.edges.push(EdgeAcc {
                    dst: e.dst,
                    weight: e.weight,
                    inline: e.inline,
                    last: 0,
                });
            }
        }
    }
    g
}

/// [`build_graph`] over the samples in `samples`; also returns the edge index by `(src, dst)`.
fn walk(
    p: &Profile,
    index: usize,
    kept: Option<&[bool]>,
    edges_into: Option<&[bool]>,
    samples: std::ops::Range<usize>,
) -> (Graph, FxHashMap<u64, u32>) {
    const NONE: u32 = u32::MAX;
    let n_nodes = p.nodes.len();
    let n_types = p.sample_types.len();
    let mut g = Graph {
        flat: vec![0; n_nodes],
        cum: vec![0; n_nodes],
        edges: Vec::new(),
    };
    let mut stamp = vec![0u32; n_nodes];
    let mut edge_map: FxHashMap<u64, u32> = FxHashMap::default();
    for s in samples {
        let w = p.values[s * n_types + index];
        if w == 0 {
            continue;
        }
        let sno = s as u32 + 1;
        let mut parent = NONE;
        let mut residual = false;
        let locs = &p.sample_locs[p.sample_offsets[s] as usize..p.sample_offsets[s + 1] as usize];
        for &l in locs.iter().rev() {
            let (a, b) = p.loc_ranges[l as usize];
            let frames = &p.loc_nodes[a as usize..b as usize];
            let outer = frames.len().wrapping_sub(1);
            for (ni, &n) in frames.iter().enumerate().rev() {
                if let Some(k) = kept
                    && !k[n as usize]
                {
                    residual = true;
                    continue;
                }
                let nu = n as usize;
                if stamp[nu] != sno {
                    stamp[nu] = sno;
                    g.cum[nu] = g.cum[nu].wrapping_add(w);
                }
                if let Some(into) = edges_into
                    && into[nu]
                    && parent != NONE
                    && n != parent
                {
                    let inline = ni != outer;
                    match edge_map.entry(u64::from(parent) << 32 | u64::from(n)) {
                        Entry::Occupied(e) => {
                            let e = &mut g.edges[*e.get() as usize];
                            if e.last != sno {
                                e.last = sno;
                                e.weight = e.weight.wrapping_add(w);
                                if !inline {
                                    e.inline = false;
                                }
                            }
                        }
                        Entry::Vacant(v) => {
                            v.insert(g.edges.len() as u32);
                            g.edges.push(EdgeAcc {
                                dst: n,
                                weight: w,
                                inline,
                                last: sno,
                            });
                        }
                    }
                }
                parent = n;
                residual = false;
            }
        }
        if parent != NONE && !residual {
            let pu = parent as usize;
            g.flat[pu] = g.flat[pu].wrapping_add(w);
        }
    }
    (g, edge_map)
}

/// The nodes that are an inlined frame somewhere (any frame of a location but its outermost): the
/// only ones that can get an `(inline)` or `(partial-inline)` mark.
fn inline_targets(p: &Profile) -> Vec<bool> {
    let mut targets = vec![false; p.nodes.len()];
    for &(a, b) in &p.loc_ranges {
        if b > a + 1 {
            for &n in &p.loc_nodes[a as usize..b as usize - 1] {
                targets[n as usize] = true;
            }
        }
    }
    targets
}

/// pprof's `computeTotal`: the sum of absolute values (of the diff base only, if it has one).
fn compute_total(p: &Profile, index: usize) -> i64 {
    let n_types = p.sample_types.len();
    let (mut total, mut diff_total) = (0i64, 0i64);
    for s in 0..p.sample_count() {
        let v = p.values[s * n_types + index].wrapping_abs();
        total = total.wrapping_add(v);
        if p.diff_base.get(s).copied().unwrap_or(false) {
            diff_total = diff_total.wrapping_add(v);
        }
    }
    if diff_total > 0 { diff_total } else { total }
}

/// Sorts node indices like pprof's `FlatNameOrder` or `CumNameOrder`.
fn sort_nodes(p: &Profile, g: &Graph, nodes: &mut [u32], cum: bool) {
    nodes.sort_unstable_by(|&l, &r| {
        let (l, r) = (l as usize, r as usize);
        let (lf, rf) = (g.flat[l].wrapping_abs(), g.flat[r].wrapping_abs());
        let (lc, rc) = (g.cum[l].wrapping_abs(), g.cum[r].wrapping_abs());
        let (first, third) = if cum {
            ((lc, rc), (lf, rf))
        } else {
            ((lf, rf), (lc, rc))
        };
        first
            .1
            .cmp(&first.0)
            .then_with(|| p.nodes[l].printable.cmp(&p.nodes[r].printable))
            .then_with(|| third.1.cmp(&third.0))
            .then_with(|| p.nodes[l].sprint().cmp(&p.nodes[r].sprint()))
    });
}

fn cutoff(total: i64, fraction: f64) -> i64 {
    ((total as f64 * fraction) as i64).wrapping_abs()
}

/// Builds the `top` report of `profile`, with the same numbers, order and trimming as
/// `go tool pprof -top`.
pub fn top(profile: &Profile, options: &TopOptions) -> Result<Report, PprofError> {
    let p = profile;
    let index = p.sample_index(options.sample_index.as_deref())?;
    let sample_type = p.sample_types[index].clone();
    let total = compute_total(p, index);

    // First build: find the functions below the cutoff (edges are not needed yet).
    let full = build_graph(p, index, None, None);
    let inline_targets = inline_targets(p);
    let present: Vec<bool> = (0..p.nodes.len()).map(|n| full.present(n)).collect();
    let present_count = present.iter().filter(|&&b| b).count();
    let flat_total = (0..p.nodes.len())
        .filter(|&n| present[n])
        .fold(0i64, |acc, n| acc.wrapping_add(full.flat[n]));
    let node_cutoff = cutoff(flat_total, options.node_fraction);
    let edge_cutoff = cutoff(flat_total, options.edge_fraction);
    let mut kept: Option<Vec<bool>> = None;
    let mut dropped_nodes = 0;
    if node_cutoff > 0 {
        let keep: Vec<bool> = (0..p.nodes.len())
            .map(|n| present[n] && full.cum[n].wrapping_abs() >= node_cutoff)
            .collect();
        let kept_count = keep.iter().filter(|&&b| b).count();
        if kept_count != present_count {
            dropped_nodes = present_count - kept_count;
            kept = Some(keep);
        }
    }
    drop(full);

    let mut g = build_graph(p, index, kept.as_deref(), Some(&inline_targets));
    let mut nodes: Vec<u32> = (0..p.nodes.len() as u32)
        .filter(|&n| g.present(n as usize))
        .collect();
    let nodes_before_limit = nodes.len();
    sort_nodes(p, &g, &mut nodes, options.cum);
    if options.node_count > 0 && options.node_count < nodes.len() {
        let mut keep = vec![false; p.nodes.len()];
        for &n in &nodes[..options.node_count] {
            keep[n as usize] = true;
        }
        g = build_graph(p, index, Some(&keep), Some(&inline_targets));
        nodes = (0..p.nodes.len() as u32)
            .filter(|&n| g.present(n as usize))
            .collect();
        sort_nodes(p, &g, &mut nodes, options.cum);
    }

    // Inline marks come from the incoming edges that survive the edge cutoff.
    let mut has_inline = vec![false; p.nodes.len()];
    let mut has_call = vec![false; p.nodes.len()];
    for e in &g.edges {
        if e.weight.wrapping_abs() < edge_cutoff {
            continue;
        }
        if e.inline {
            has_inline[e.dst as usize] = true;
        } else {
            has_call[e.dst as usize] = true;
        }
    }

    let output_unit = select_output_unit(&g, &nodes, total, &sample_type.unit);
    let mut rows = Vec::with_capacity(nodes.len());
    let mut flat_sum = 0i64;
    for &n in &nodes {
        let n = n as usize;
        let (flat, cum) = (g.flat[n], g.cum[n]);
        flat_sum = flat_sum.wrapping_add(flat);
        rows.push(Row {
            name: p.nodes[n].printable.to_string(),
            flat,
            flat_pct: ratio_pct(flat, total),
            sum_pct: ratio_pct(flat_sum, total),
            cum,
            cum_pct: ratio_pct(cum, total),
            inline: match (has_inline[n], has_call[n]) {
                (true, true) => Inline::Partial,
                (true, false) => Inline::Inline,
                _ => Inline::No,
            },
        });
    }
    let mut report = Report {
        sample_type,
        total,
        flat_sum,
        dropped_nodes,
        dropped_cutoff: cutoff(total, options.node_fraction),
        nodes_before_limit,
        rows,
        output_unit,
        header: Vec::new(),
    };
    report.header = profile_labels(p, &report);
    Ok(report)
}

/// pprof's `selectOutputUnit` for the `minimum` unit: the unit of the smallest value shown,
/// unless that is under 1 % of the total, then of 100× that value.
fn select_output_unit(g: &Graph, nodes: &[u32], total: i64, sample_unit: &str) -> String {
    if nodes.is_empty() {
        return "minimum".to_owned();
    }
    let mut min_value = 0i64;
    for &n in nodes {
        let n = n as usize;
        let mut node_min = g.flat[n].wrapping_abs();
        if node_min == 0 {
            node_min = g.cum[n].wrapping_abs();
        }
        if node_min > 0 && (min_value == 0 || node_min < min_value) {
            min_value = node_min;
        }
    }
    let max_value = total;
    if min_value == 0 {
        min_value = max_value;
    }
    let (_, min_unit) = scale(min_value, sample_unit, "minimum");
    let (_, max_unit) = scale(max_value, sample_unit, "minimum");
    let mut unit = min_unit.clone();
    if min_unit != max_unit && min_value.wrapping_mul(100) < max_value {
        unit = scale(min_value.wrapping_mul(100), sample_unit, "minimum").1;
    }
    if unit.is_empty() {
        sample_unit.to_owned()
    } else {
        unit
    }
}

/// pprof's `ProfileLabels`. The `Time:` line is printed in UTC (pprof uses the local zone).
fn profile_labels(p: &Profile, r: &Report) -> Vec<String> {
    let mut label = Vec::new();
    if !p.main_file.is_empty() {
        label.push(format!("File: {}", base_name(&p.main_file)));
    }
    if !p.main_build_id.is_empty() {
        label.push(format!("Build ID: {}", p.main_build_id));
    }
    for c in &p.comments {
        if !c.starts_with('#') {
            label.push(c.clone());
        }
    }
    if !r.sample_type.r#type.is_empty() {
        label.push(format!("Type: {}", r.sample_type.r#type));
    }
    if p.time_nanos != 0 {
        label.push(format!("Time: {}", go_time_utc(p.time_nanos)));
    }
    if p.duration_nanos != 0 {
        let duration = scaled_label(p.duration_nanos, "nanoseconds", "auto");
        let (total_nanos, total_unit) = scale(r.total, &r.sample_type.unit, "nanoseconds");
        let ratio = if total_unit == "ns" && total_nanos != 0.0 {
            format!("({})", percentage(total_nanos as i64, p.duration_nanos))
        } else {
            String::new()
        };
        label.push(format!(
            "Duration: {duration}, Total samples = {} {ratio}",
            r.format_value(r.total)
        ));
    }
    label
}
