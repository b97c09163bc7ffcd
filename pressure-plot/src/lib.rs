//! Pictures of memory episodes, for `pressured plot`.
//!
//! - [`EpisodeBuilder`] runs replay records ([`pressure_core::replay::ReplayRecord`]) through the engine
//!   exactly as `pressured --replay` does ([`pressure_core::replay::Replayer`]) and keeps, per container,
//!   the samples (working set, limit, the warn and critical levels in bytes with the container's own
//!   thresholds) and the events worth a marker: entering critical, `predicted_oom` (with its ETA) and
//!   `oom_killed`. [`EpisodeBuilder::finish`] gives the [`Episode`].
//! - [`Episode::render`] draws one panel per container, the `top` most at risk first (killed, then
//!   predicted, then by peak usage ratio; [`Episode::ranked`]), as SVG or PNG ([`Format`]; PNG with the
//!   default `png` feature, which embeds a font for the text).
//!
//! Bounded: at most [`MAX_SAMPLES`] samples are kept ([`PlotError::TooManySamples`] beyond).
#![deny(missing_docs)]

use std::collections::HashMap;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use pressure_core::replay::{ReplayRecord, Replayer};
use pressure_core::{Engine, Event, EventType, Severity, ThresholdsConfig};

pub use plotters::style::RGBColor;

/// The most samples an [`EpisodeBuilder`] keeps (all containers together): 32 bytes each, 64 MiB.
pub const MAX_SAMPLES: usize = 2 << 20;

/// The colour of the working set line (SVG `#1F77B4`).
pub const WORKING_SET_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
/// The colour of the limit line.
pub const LIMIT_COLOR: RGBColor = RGBColor(0, 0, 0);
/// The colour of the warn level line.
pub const WARN_COLOR: RGBColor = RGBColor(0xe6, 0x9f, 0x00);
/// The colour of the critical level line and marker.
pub const CRITICAL_COLOR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// The colour of the `predicted_oom` markers.
pub const PREDICTED_COLOR: RGBColor = RGBColor(0x94, 0x67, 0xbd);
/// The colour of the `oom_killed` markers.
pub const KILL_COLOR: RGBColor = RGBColor(0, 0, 0);

/// Why a picture could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// The output path's extension is neither `.svg` nor `.png` (or PNG support is not built in).
    #[error("{path}: unknown picture format (use .svg{png})", png = if cfg!(feature = "png") { " or .png" } else { "; this build has no PNG support" })]
    UnknownFormat {
        /// The path.
        path: String,
    },
    /// More samples than [`MAX_SAMPLES`].
    #[error("more than {limit} samples; plot a shorter timeline")]
    TooManySamples {
        /// [`MAX_SAMPLES`].
        limit: usize,
    },
    /// There is nothing to draw.
    #[error("no samples to plot")]
    Empty,
    /// The drawing backend failed.
    #[error("drawing the picture: {0}")]
    Draw(String),
}

/// The picture format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// SVG text.
    Svg,
    /// PNG image (feature `png`).
    #[cfg(feature = "png")]
    Png,
}

impl Format {
    /// The format of `path` by its extension (`.svg`, `.png`, any case).
    ///
    /// # Errors
    /// [`PlotError::UnknownFormat`] for other extensions.
    pub fn from_path(path: &Path) -> Result<Format, PlotError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("svg") => Ok(Format::Svg),
            #[cfg(feature = "png")]
            Some("png") => Ok(Format::Png),
            _ => Err(PlotError::UnknownFormat {
                path: path.display().to_string(),
            }),
        }
    }
}

/// One sample of a container, as plotted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Seconds since the episode's first sample.
    pub t: f64,
    /// Working set, bytes.
    pub working_set: u64,
    /// Limit, bytes; `None` when unlimited.
    pub limit: Option<u64>,
    /// The warn level in bytes (the container's `warn_percent` of the limit).
    pub warn: Option<u64>,
    /// The critical level in bytes.
    pub critical: Option<u64>,
}

/// What a marker shows.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum MarkerKind {
    /// `predicted_oom`, with its ETA in seconds.
    PredictedOom {
        /// `eta_seconds`.
        eta_seconds: f64,
    },
    /// Entering critical.
    Critical,
    /// `oom_killed`.
    OomKilled,
}

impl MarkerKind {
    /// The marker's label, e.g. `predicted_oom ETA 42 s` (`ETA 4.2 s` below 10 s).
    pub fn label(&self) -> String {
        match self {
            MarkerKind::PredictedOom { eta_seconds } if *eta_seconds < 10.0 => {
                format!("predicted_oom ETA {eta_seconds:.1} s")
            }
            MarkerKind::PredictedOom { eta_seconds } => {
                format!("predicted_oom ETA {eta_seconds:.0} s")
            }
            MarkerKind::Critical => "critical".into(),
            MarkerKind::OomKilled => "oom_killed".into(),
        }
    }
}

/// An event on a container's timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marker {
    /// Seconds since the episode's first sample.
    pub t: f64,
    /// Working set at the event, bytes (the sample's).
    pub working_set: u64,
    /// What happened.
    pub kind: MarkerKind,
}

/// One container's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `namespace/pod/container` (what is known of it).
    pub name: String,
    /// The samples in order.
    pub points: Vec<Point>,
    /// The markers in order.
    pub markers: Vec<Marker>,
}

impl Series {
    /// The risk order key: killed, then predicted, then the peak of working set ÷ limit.
    fn risk(&self) -> (bool, bool, f64) {
        let has = |f: fn(&MarkerKind) -> bool| self.markers.iter().any(|m| f(&m.kind));
        let peak = self
            .points
            .iter()
            .filter_map(|p| p.limit.map(|l| p.working_set as f64 / l as f64))
            .fold(0.0, f64::max);
        (
            has(|k| matches!(k, MarkerKind::OomKilled)),
            has(|k| matches!(k, MarkerKind::PredictedOom { .. })),
            peak,
        )
    }
}

/// Builds an [`Episode`] from replay records.
#[derive(Debug)]
pub struct EpisodeBuilder {
    replayer: Replayer,
    index: HashMap<String, usize>,
    series: Vec<Series>,
    events: Vec<Event>,
    t0: Option<f64>,
    samples: usize,
}

impl EpisodeBuilder {
    /// A builder whose engine has the global `thresholds` (per-pod annotations apply as in replay).
    pub fn new(thresholds: &ThresholdsConfig) -> EpisodeBuilder {
        EpisodeBuilder {
            replayer: Replayer::new(Engine::new(thresholds, false)),
            index: HashMap::new(),
            series: Vec::new(),
            events: Vec::new(),
            t0: None,
            samples: 0,
        }
    }

    /// Feeds one record.
    ///
    /// # Errors
    /// [`PlotError::TooManySamples`] past [`MAX_SAMPLES`].
    pub fn push(&mut self, record: &ReplayRecord) -> Result<(), PlotError> {
        if self.samples >= MAX_SAMPLES {
            return Err(PlotError::TooManySamples { limit: MAX_SAMPLES });
        }
        self.samples += 1;
        let slot = self.replayer.feed(record, &mut self.events);
        let t0 = *self.t0.get_or_insert(record.t);
        let t = record.t - t0;
        let target = &record.sample.target;
        let key = target.key();
        let next = self.series.len();
        let i = *self.index.entry(key).or_insert(next);
        if i == next {
            let name = [
                target.namespace.as_deref(),
                target.pod_name.as_deref().or(target.pod_uid.as_deref()),
                target
                    .container_name
                    .as_deref()
                    .or(target.container_id.as_deref()),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("/");
            self.series.push(Series {
                name,
                points: Vec::new(),
                markers: Vec::new(),
            });
        }
        let reading = &record.sample.reading;
        let limit = reading.limit_bytes.filter(|&l| l > 0);
        let th = self.replayer.engine().thresholds(slot);
        let level = |percent: f64| limit.map(|l| (l as f64 * percent / 100.0) as u64);
        let series = &mut self.series[i];
        series.points.push(Point {
            t,
            working_set: reading.working_set_bytes,
            limit,
            warn: th.and_then(|th| level(th.warn_percent)),
            critical: th.and_then(|th| level(th.critical_percent)),
        });
        for event in self.events.drain(..) {
            let kind = match event.event_type {
                EventType::PredictedOom => MarkerKind::PredictedOom {
                    eta_seconds: event.eta_seconds.unwrap_or(f64::NAN),
                },
                EventType::OomKilled => MarkerKind::OomKilled,
                EventType::MemoryPressure
                    if event.severity == Severity::Critical
                        && event.previous_severity != Severity::Critical =>
                {
                    MarkerKind::Critical
                }
                _ => continue,
            };
            series.markers.push(Marker {
                t,
                working_set: reading.working_set_bytes,
                kind,
            });
        }
        Ok(())
    }

    /// The episode.
    pub fn finish(self) -> Episode {
        Episode {
            series: self.series,
        }
    }
}

/// Every container's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// In order of first appearance.
    pub series: Vec<Series>,
}

/// How to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlotOptions {
    /// Panels (the containers most at risk): at least 1.
    pub top: usize,
    /// Picture width, pixels.
    pub width: u32,
    /// Height of one panel, pixels.
    pub panel_height: u32,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            top: 4,
            width: 1000,
            panel_height: 320,
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

impl Episode {
    /// The containers most at risk first: OOM-killed, then with a `predicted_oom`, then by the peak of
    /// working set ÷ limit; ties keep the order of appearance.
    pub fn ranked(&self) -> Vec<&Series> {
        let mut ranked: Vec<&Series> = self.series.iter().collect();
        ranked.sort_by(|a, b| {
            let (ka, kb) = (a.risk(), b.risk());
            (kb.0, kb.1).cmp(&(ka.0, ka.1)).then(kb.2.total_cmp(&ka.2))
        });
        ranked
    }

    /// Draws the `options.top` containers most at risk ([`Episode::ranked`]), one panel each.
    ///
    /// # Errors
    /// [`PlotError::Empty`] without samples, [`PlotError::Draw`] when the backend fails.
    pub fn render(&self, options: &PlotOptions, format: Format) -> Result<Vec<u8>, PlotError> {
        let panels: Vec<&Series> = self.ranked().into_iter().take(options.top.max(1)).collect();
        if panels.is_empty() {
            return Err(PlotError::Empty);
        }
        register_font();
        let size = (
            options.width.max(200),
            options.panel_height.max(100) * panels.len() as u32,
        );
        match format {
            Format::Svg => {
                let mut out = String::new();
                {
                    let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
                    draw(&root, &panels)?;
                    root.present().map_err(draw_error)?;
                }
                Ok(out.into_bytes())
            }
            #[cfg(feature = "png")]
            Format::Png => {
                let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
                {
                    let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                    draw(&root, &panels)?;
                    root.present().map_err(draw_error)?;
                }
                encode_png(&rgb, size)
            }
        }
    }
}

fn draw_error(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// The embedded font, for the bitmap backend's text (and the layout of both).
fn register_font() {
    #[cfg(feature = "png")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let font: &'static [u8] = include_bytes!("../fonts/DejaVuSansMono-subset.ttf");
            // The font is part of the build: it parses.
            let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, font);
        });
    }
}

#[cfg(feature = "png")]
fn encode_png(rgb: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>, PlotError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(draw_error)?;
    writer.write_image_data(rgb).map_err(draw_error)?;
    writer.finish().map_err(draw_error)?;
    Ok(out)
}

/// Draws the panels on `root`, one below the other.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[&Series],
) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(draw_error)?;
    for (area, series) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        draw_panel(area, series)?;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &Series,
) -> Result<(), PlotError> {
    let e = draw_error;
    let t_end = series.points.last().map_or(1.0, |p| p.t);
    let t_start = series.points.first().map_or(0.0, |p| p.t);
    let t_end = if t_end > t_start {
        t_end
    } else {
        t_start + 1.0
    };
    let y_max = series
        .points
        .iter()
        .map(|p| p.working_set.max(p.limit.unwrap_or(0)))
        .max()
        .map_or(1.0, mib)
        .max(1.0)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(&series.name, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(t_start..t_end, 0.0..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("MiB")
        .light_line_style(WHITE)
        .draw()
        .map_err(e)?;
    let line = |f: fn(&Point) -> Option<u64>| {
        series
            .points
            .iter()
            .filter_map(move |p| f(p).map(|v| (p.t, mib(v))))
            .collect::<Vec<_>>()
    };
    for (values, style, label) in [
        (line(|p| p.limit), LIMIT_COLOR.stroke_width(2), "limit"),
        (
            line(|p| p.critical),
            CRITICAL_COLOR.stroke_width(1),
            "critical",
        ),
        (line(|p| p.warn), WARN_COLOR.stroke_width(1), "warn"),
        (
            line(|p| Some(p.working_set)),
            WORKING_SET_COLOR.stroke_width(2),
            "working set",
        ),
    ] {
        if values.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(values, style))
            .map_err(e)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], style));
    }
    for (i, marker) in series.markers.iter().enumerate() {
        // Alternate labels above and below their markers: events close in time do not overprint.
        let dy = if i % 2 == 0 { -16 } else { 6 };
        let at = (marker.t, mib(marker.working_set));
        let (color, size) = match marker.kind {
            MarkerKind::PredictedOom { .. } => (PREDICTED_COLOR, 5),
            MarkerKind::Critical => (CRITICAL_COLOR, 5),
            MarkerKind::OomKilled => (KILL_COLOR, 7),
        };
        let text = marker.kind.label();
        // Labels in the right third end at their marker, so the picture's edge does not cut them.
        let right = marker.t > t_start + (t_end - t_start) * 2.0 / 3.0;
        let (dx, anchor) = if right {
            (-8, HPos::Right)
        } else {
            (8, HPos::Left)
        };
        let font = ("sans-serif", 12)
            .into_font()
            .color(&color)
            .pos(Pos::new(anchor, VPos::Top));
        chart
            .draw_series(std::iter::once(
                EmptyElement::at(at)
                    + Circle::new((0, 0), size, color.filled())
                    + Text::new(text, (dx, dy), font.clone()),
            ))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    Ok(())
}
