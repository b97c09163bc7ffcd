//! `pressure-plot` on the bundled timeline: the pictures' content, read back from the SVG and the PNG.

use pressure_core::ThresholdsConfig;
use pressure_core::replay::parse_line;
use pressure_plot::{
    Episode, EpisodeBuilder, Format, MarkerKind, PlotOptions, RGBColor, WORKING_SET_COLOR,
};

fn bundled() -> Episode {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/replay-timeline.jsonl"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut builder = EpisodeBuilder::new(&ThresholdsConfig::default());
    for (i, line) in text.lines().enumerate() {
        if let Some(record) = parse_line(i + 1, line).unwrap() {
            builder.push(&record).unwrap();
        }
    }
    builder.finish()
}

fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// The value of attribute `name` in an SVG tag.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[start..start + tag[start..].find('"')?])
}

/// Every `<tag …/>` or `<tag …>` opening of `name` in document order.
fn tags<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name} ");
    svg.match_indices(&open)
        .map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap()])
        .collect()
}

/// The text contents of every `<text>`.
fn texts(svg: &str) -> Vec<String> {
    svg.match_indices("<text ")
        .map(|(i, _)| {
            let body = &svg[i + svg[i..].find('>').unwrap() + 1..];
            body[..body.find("</text>").unwrap()].trim().to_string()
        })
        .collect()
}

fn points(tag: &str) -> Vec<(f64, f64)> {
    attr(tag, "points")
        .unwrap()
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_bundled_timeline_gives_every_marker_and_ranks_the_killed_container_first() {
    let episode = bundled();
    assert_eq!(episode.series.len(), 3);
    let ranked = episode.ranked();
    assert_eq!(ranked[0].name, "shop/cart-0/app");
    assert_eq!(
        ranked[1].name, "shop/search-0/es",
        "55 % of a limit beats no limit"
    );
    assert_eq!(ranked[2].name, "batch/etl-0/worker");
    let kinds: Vec<_> = ranked[0].markers.iter().map(|m| m.kind).collect();
    assert!(kinds.contains(&MarkerKind::Critical), "{kinds:?}");
    assert!(kinds.contains(&MarkerKind::OomKilled), "{kinds:?}");
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, MarkerKind::PredictedOom { eta_seconds } if *eta_seconds > 0.0)),
        "{kinds:?}"
    );
    // The order on the timeline: predicted before critical before the kill.
    let at = |f: fn(&MarkerKind) -> bool| ranked[0].markers.iter().find(|m| f(&m.kind)).unwrap().t;
    let predicted = at(|k| matches!(k, MarkerKind::PredictedOom { .. }));
    let critical = at(|k| *k == MarkerKind::Critical);
    let killed = at(|k| *k == MarkerKind::OomKilled);
    assert!(
        predicted < killed && critical < killed,
        "{predicted} {critical} {killed}"
    );
    // Warn and critical follow the limit; search-0's annotation lowers its warn level to 50 %.
    let p = ranked[0].points[0];
    assert_eq!(p.warn, p.limit.map(|l| (l as f64 * 0.70) as u64));
    assert_eq!(p.critical, p.limit.map(|l| (l as f64 * 0.85) as u64));
    let s = ranked[1].points[0];
    assert_eq!(s.warn, s.limit.map(|l| l / 2));
    assert!(
        ranked[2]
            .points
            .iter()
            .all(|p| p.limit.is_none() && p.warn.is_none())
    );
}

#[test]
fn the_svg_draws_the_samples_and_the_markers() {
    let episode = bundled();
    let options = PlotOptions {
        top: 2,
        ..PlotOptions::default()
    };
    let svg = String::from_utf8(episode.render(&options, Format::Svg).unwrap()).unwrap();
    // One working-set line per panel (the legend's sample lines have two points).
    let ws: Vec<_> = tags(&svg, "polyline")
        .into_iter()
        .filter(|t| attr(t, "stroke") == Some(hex(WORKING_SET_COLOR).as_str()))
        .map(points)
        .filter(|p| p.len() > 2)
        .collect();
    assert_eq!(ws.len(), 2, "top 2: two panels");
    let ranked = episode.ranked();
    for (line, series) in ws.iter().zip(&ranked) {
        // A vertex per sample, time to the right, and a byte scale that is one straight line: every
        // vertex is where the first and the highest sample put it (to the rounding of a pixel).
        assert_eq!(line.len(), series.points.len(), "{}", series.name);
        assert!(line.windows(2).all(|w| w[1].0 > w[0].0), "{}", series.name);
        let ws = |i: usize| series.points[i].working_set;
        let (lo, hi) = (
            (0..line.len()).min_by_key(|&i| ws(i)).unwrap(),
            (0..line.len()).max_by_key(|&i| ws(i)).unwrap(),
        );
        let (b0, b1) = (ws(lo) as f64, ws(hi) as f64);
        let (y0, y1) = (line[lo].1, line[hi].1);
        if b0 == b1 {
            assert!(line.iter().all(|v| v.1 == y0), "flat: {line:?}");
            continue;
        }
        assert!(y1 < y0, "more memory is higher up");
        for (v, p) in line.iter().zip(&series.points) {
            let expect = y0 + (p.working_set as f64 - b0) * (y1 - y0) / (b1 - b0);
            assert!(
                (v.1 - expect).abs() <= 1.5,
                "{}: {v:?} vs {expect}",
                series.name
            );
        }
    }
    let texts = texts(&svg);
    for want in [
        "shop/cart-0/app",
        "shop/search-0/es",
        "critical",
        "oom_killed",
        "working set",
        "limit",
    ] {
        assert!(texts.iter().any(|t| t == want), "{want} in {texts:?}");
    }
    let etas: Vec<String> = ranked[0]
        .markers
        .iter()
        .filter(|m| matches!(m.kind, MarkerKind::PredictedOom { .. }))
        .map(|m| m.kind.label())
        .collect();
    assert!(!etas.is_empty());
    for eta in &etas {
        assert!(texts.contains(eta), "{eta} in {texts:?}");
    }
    // One filled circle per marker of the drawn panels.
    let circles = tags(&svg, "circle").len();
    assert_eq!(circles, ranked[0].markers.len() + ranked[1].markers.len());
}

#[cfg(feature = "png")]
#[test]
fn the_png_has_the_lines_and_markers_where_the_svg_has_them() {
    let episode = bundled();
    let options = PlotOptions::default();
    let png_bytes = episode.render(&options, Format::Png).unwrap();
    use pressure_plot::PREDICTED_COLOR;
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!(
        (info.width, info.height),
        (1000, 3 * 320),
        "three containers, three panels"
    );
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let pixel = |x: u32, y: u32| {
        let i = ((y * info.width + x) * 3) as usize;
        RGBColor(rgb[i], rgb[i + 1], rgb[i + 2])
    };
    // The same layout as the SVG (same font metrics): the predicted_oom markers' centres are purple.
    let svg = String::from_utf8(episode.render(&options, Format::Svg).unwrap()).unwrap();
    let predicted: Vec<_> = tags(&svg, "circle")
        .into_iter()
        .filter(|t| attr(t, "fill") == Some(hex(PREDICTED_COLOR).as_str()))
        .map(|t| {
            let n = |a| attr(t, a).unwrap().parse::<u32>().unwrap();
            (n("cx"), n("cy"))
        })
        .collect();
    assert!(!predicted.is_empty());
    for (x, y) in predicted {
        assert_eq!(pixel(x, y), PREDICTED_COLOR, "at {x},{y}");
    }
    // Each panel has working-set pixels; the background is white.
    for panel in 0..3 {
        let band = panel * 320..(panel + 1) * 320;
        let blue = band
            .flat_map(|y| (0..info.width).map(move |x| (x, y)))
            .filter(|&(x, y)| pixel(x, y) == WORKING_SET_COLOR)
            .count();
        assert!(blue > 200, "panel {panel}: {blue} working-set pixels");
    }
    assert_eq!(pixel(2, 2), RGBColor(255, 255, 255));
}

#[test]
fn formats_come_from_the_extension() {
    use std::path::Path;
    assert_eq!(Format::from_path(Path::new("a.SVG")).unwrap(), Format::Svg);
    #[cfg(feature = "png")]
    assert_eq!(Format::from_path(Path::new("a.png")).unwrap(), Format::Png);
    let err = Format::from_path(Path::new("a.jpg"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("a.jpg"), "{err}");
}
