//! pprof's frame pruning (`drop_frames` / `keep_frames`, `Profile.Prune`).

pub(crate) const PRUNE_BENEATH: u8 = 1;
pub(crate) const PRUNE: u8 = 2;

/// `drop_frames`/`keep_frames` of a profile, compiled as pprof's `RemoveUninteresting` does
/// (`^(…)$`). Like pprof, nothing is pruned when either fails to compile.
pub(crate) struct Pruner {
    drop: regex_lite::Regex,
    keep: Option<regex_lite::Regex>,
}

impl Pruner {
    pub(crate) fn new(drop: &str, keep: &str) -> Option<Pruner> {
        if drop.is_empty() {
            return None;
        }
        let compile = |re: &str| {
            regex_lite::RegexBuilder::new(&format!("^({re})$"))
                .size_limit(1 << 20)
                .build()
                .ok()
        };
        let drop = compile(drop)?;
        let keep = if keep.is_empty() {
            None
        } else {
            Some(compile(keep)?)
        };
        Some(Pruner { drop, keep })
    }

    /// Whether a frame of function `name` is dropped.
    pub(crate) fn drops(&self, name: &str) -> bool {
        if name.is_empty() {
            return false;
        }
        let name = simplify_func(name);
        self.drop.is_match(name) && !self.keep.as_ref().is_some_and(|k| k.is_match(name))
    }
}

/// pprof's `simplifyFunc`: drops a leading `.` and the argument list from the first `(` that is
/// not part of `(anonymous namespace)` or `operator()`.
fn simplify_func(name: &str) -> &str {
    let name = name.strip_prefix('.').unwrap_or(name);
    let mut i = 0;
    while let Some(c) = name[i..].chars().next() {
        let rest = &name[i..];
        if rest.starts_with("(anonymous namespace)") {
            i += "(anonymous namespace)".len();
        } else if rest.starts_with("operator()") {
            i += "operator()".len();
        } else if c == '(' {
            return &name[..i];
        } else {
            i += c.len_utf8();
        }
    }
    name
}
