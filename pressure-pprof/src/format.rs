//! Number formatting exactly as pprof's `internal/measurement` package and Go's `fmt` do it.
//!
//! Source: google/pprof `internal/measurement/measurement.go` (vendored by Go 1.19 at
//! `src/cmd/vendor/github.com/google/pprof`), and Go's `strconv` `%g` rules.

/// One unit of a unit family: canonical name, aliases, factor to the base unit.
struct Unit {
    name: &'static str,
    aliases: &'static [&'static str],
    factor: f64,
}

/// A family of units (memory, time, GCU) and its default unit.
struct UnitType {
    default_name: &'static str,
    default_factor: f64,
    units: &'static [Unit],
}

const UNIT_TYPES: &[UnitType] = &[
    UnitType {
        default_name: "B",
        default_factor: 1.0,
        units: &[
            Unit {
                name: "B",
                aliases: &["b", "byte"],
                factor: 1.0,
            },
            Unit {
                name: "kB",
                aliases: &["kb", "kbyte", "kilobyte"],
                factor: 1024.0,
            },
            Unit {
                name: "MB",
                aliases: &["mb", "mbyte", "megabyte"],
                factor: 1048576.0,
            },
            Unit {
                name: "GB",
                aliases: &["gb", "gbyte", "gigabyte"],
                factor: 1073741824.0,
            },
            Unit {
                name: "TB",
                aliases: &["tb", "tbyte", "terabyte"],
                factor: 1099511627776.0,
            },
            Unit {
                name: "PB",
                aliases: &["pb", "pbyte", "petabyte"],
                factor: 1125899906842624.0,
            },
        ],
    },
    UnitType {
        default_name: "s",
        default_factor: 1e9,
        units: &[
            Unit {
                name: "ns",
                aliases: &["ns", "nanosecond"],
                factor: 1.0,
            },
            Unit {
                name: "us",
                aliases: &["μs", "us", "microsecond"],
                factor: 1e3,
            },
            Unit {
                name: "ms",
                aliases: &["ms", "millisecond"],
                factor: 1e6,
            },
            Unit {
                name: "s",
                aliases: &["s", "sec", "second"],
                factor: 1e9,
            },
            Unit {
                name: "hrs",
                aliases: &["hour", "hr"],
                factor: 3.6e12,
            },
        ],
    },
    UnitType {
        default_name: "GCU",
        default_factor: 1.0,
        units: &[
            Unit {
                name: "n*GCU",
                aliases: &["nanogcu"],
                factor: 1e-9,
            },
            Unit {
                name: "u*GCU",
                aliases: &["microgcu"],
                factor: 1e-6,
            },
            Unit {
                name: "m*GCU",
                aliases: &["milligcu"],
                factor: 1e-3,
            },
            Unit {
                name: "GCU",
                aliases: &["gcu"],
                factor: 1.0,
            },
            Unit {
                name: "k*GCU",
                aliases: &["kilogcu"],
                factor: 1e3,
            },
            Unit {
                name: "M*GCU",
                aliases: &["megagcu"],
                factor: 1e6,
            },
            Unit {
                name: "G*GCU",
                aliases: &["gigagcu"],
                factor: 1e9,
            },
            Unit {
                name: "T*GCU",
                aliases: &["teragcu"],
                factor: 1e12,
            },
            Unit {
                name: "P*GCU",
                aliases: &["petagcu"],
                factor: 1e15,
            },
        ],
    },
];

impl UnitType {
    /// `sniffUnit`: lower-case, drop one trailing `s` from names longer than two bytes, look up.
    fn sniff(&self, unit: &str) -> Option<&Unit> {
        let lower = unit.to_lowercase();
        let name = if lower.len() > 2 {
            lower.strip_suffix('s').unwrap_or(&lower)
        } else {
            &lower
        };
        self.units.iter().find(|u| u.aliases.contains(&name))
    }

    /// `autoScale`: the largest unit the value is at least one of.
    fn auto_scale(&self, value: f64) -> Option<(f64, &'static str)> {
        let mut f = 0.0;
        let mut unit = "";
        for u in self.units {
            if u.factor >= f && value / u.factor >= 1.0 {
                f = u.factor;
                unit = u.name;
            }
        }
        if f == 0.0 {
            None
        } else {
            Some((value / f, unit))
        }
    }

    fn convert(&self, value: i64, from: &str, to: &str) -> Option<(f64, &'static str)> {
        let from = self.sniff(from)?;
        let v = value as f64 * from.factor;
        if to == "minimum" || to == "auto" {
            return Some(
                self.auto_scale(v)
                    .unwrap_or((v / self.default_factor, self.default_name)),
            );
        }
        Some(match self.sniff(to) {
            Some(to) => (v / to.factor, to.name),
            None => (v / self.default_factor, self.default_name),
        })
    }
}

/// `measurement.Scale`: converts `value` in `from` units to `to` units (or the best unit for
/// `minimum`/`auto`), returning the value and the unit name (empty when uninteresting).
pub(crate) fn scale(value: i64, from: &str, to: &str) -> (f64, String) {
    if value < 0
        && let Some(neg) = value.checked_neg()
    {
        let (v, u) = scale(neg, from, to);
        return (-v, u);
    }
    for ut in UNIT_TYPES {
        if let Some((v, u)) = ut.convert(value, from, to) {
            return (v, u.to_owned());
        }
    }
    match to {
        "count" | "sample" | "unit" | "minimum" | "auto" => (value as f64, String::new()),
        _ => (value as f64, to.to_owned()),
    }
}

/// `measurement.ScaledLabel`: `%.2f` of the scaled value, `.00` trimmed, unit appended.
pub(crate) fn scaled_label(value: i64, from: &str, to: &str) -> String {
    let (v, u) = scale(value, from, to);
    let s = format!("{v:.2}");
    let s = s.strip_suffix(".00").unwrap_or(&s);
    if s == "0" || s == "-0" {
        return "0".to_owned();
    }
    format!("{s}{u}")
}

/// `measurement.Percentage`: `  100%`, `%5.2f%%` from 1 % up, `%5.2g%%` below.
pub(crate) fn percentage(value: i64, total: i64) -> String {
    let ratio = if total != 0 {
        (value as f64 / total as f64).abs() * 100.0
    } else {
        0.0
    };
    if (99.95..=100.05).contains(&ratio) {
        "  100%".to_owned()
    } else if ratio >= 1.0 {
        format!("{ratio:5.2}%")
    } else {
        format!("{:>5}%", go_g(ratio, 2))
    }
}

/// The percentage as a number, as [`percentage`] computes it before formatting.
pub(crate) fn ratio_pct(value: i64, total: i64) -> f64 {
    if total != 0 {
        (value as f64 / total as f64).abs() * 100.0
    } else {
        0.0
    }
}

/// Go's `strconv.FormatFloat(x, 'g', prec, 64)` for finite `x`: `prec` significant digits, trailing
/// zeros dropped, exponent form when the exponent is below -4 or at least the precision.
pub(crate) fn go_g(x: f64, prec: usize) -> String {
    let prec = prec.max(1);
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".to_owned()
        } else {
            "0".to_owned()
        };
    }
    let neg = x < 0.0;
    // Rust's exponent formatting is correctly rounded (ties to even), like Go's fixed-digit ryu.
    let e = format!("{:.*e}", prec - 1, x.abs());
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut p = prec as i32;
    let mut eprec = p;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        if p > nd {
            p = nd;
        }
        out.push(digits[0] as char);
        if p > 1 {
            out.push('.');
            for i in 1..p as usize {
                out.push(*digits.get(i).unwrap_or(&b'0') as char);
            }
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push('0');
        }
        out.push_str(&a.to_string());
        return out;
    }
    if p > dp {
        p = nd;
    }
    let decimals = (p - dp).max(0);
    // Integer part.
    if dp > 0 {
        for i in 0..dp {
            out.push(*digits.get(i as usize).unwrap_or(&b'0') as char);
        }
    } else {
        out.push('0');
    }
    if decimals > 0 {
        out.push('.');
        for i in 0..decimals {
            let idx = dp + i;
            let c = if idx < 0 {
                b'0'
            } else {
                *digits.get(idx as usize).unwrap_or(&b'0')
            };
            out.push(c as char);
        }
    }
    out
}

/// Go's `filepath.Base` on Unix.
pub(crate) fn base_name(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// Go's `time.Unix(0, ns).UTC().Format("Jan 2, 2006 at 3:04pm (MST)")`.
pub(crate) fn go_time_utc(nanos: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = nanos.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let hour = sod / 3600;
    let min = (sod % 3600) / 60;
    let (h12, ampm) = match hour {
        0 => (12, "am"),
        1..=11 => (hour, "am"),
        12 => (12, "pm"),
        _ => (hour - 12, "pm"),
    };
    format!(
        "{} {d}, {y} at {h12}:{min:02}{ampm} (UTC)",
        MONTHS[(m - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_labels_match_pprof() {
        assert_eq!(scaled_label(1536, "bytes", "kB"), "1.50kB");
        assert_eq!(scaled_label(2048, "bytes", "kB"), "2kB");
        assert_eq!(scaled_label(0, "bytes", "MB"), "0");
        assert_eq!(scaled_label(10_000_000, "nanoseconds", "ms"), "10ms");
        assert_eq!(scaled_label(1_234_567_890, "nanoseconds", "s"), "1.23s");
        assert_eq!(scaled_label(17, "count", "count"), "17");
        assert_eq!(scaled_label(17, "widgets", "widgets"), "17widgets");
        assert_eq!(scale(512 * 1024 * 1024, "bytes", "minimum").1, "MB");
        // "μs" is three bytes, so pprof trims its "s" and never finds it.
        assert_eq!(scale(5, "μs", "minimum"), (5.0, String::new()));
    }

    #[test]
    fn percentages_match_go_fmt() {
        assert_eq!(percentage(1, 1), "  100%");
        assert_eq!(percentage(5, 10), "50.00%");
        assert_eq!(percentage(5, 1000), "  0.5%");
        assert_eq!(percentage(1, 3000), "0.033%");
        assert_eq!(percentage(1, 10_000_000), "1e-05%");
        assert_eq!(percentage(0, 10), "    0%");
        assert_eq!(percentage(-5, 10), "50.00%");
    }

    #[test]
    fn go_g_forms() {
        assert_eq!(go_g(0.1, 2), "0.1");
        assert_eq!(go_g(0.99996, 2), "1");
        assert_eq!(go_g(0.000123, 2), "0.00012");
        assert_eq!(go_g(0.0000123, 2), "1.2e-05");
        assert_eq!(go_g(12.0, 2), "12");
        assert_eq!(go_g(123.0, 2), "1.2e+02");
    }

    #[test]
    fn utc_time_like_go() {
        assert_eq!(go_time_utc(0), "Jan 1, 1970 at 12:00am (UTC)");
        assert_eq!(
            go_time_utc(1_764_000_000_000_000_000),
            "Nov 24, 2025 at 4:00pm (UTC)"
        );
        assert_eq!(base_name("/tmp/x/bin"), "bin");
        assert_eq!(base_name("bin/"), "bin");
    }
}
