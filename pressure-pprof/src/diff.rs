//! `-diff_base`: one profile's samples minus another's, as `go tool pprof -diff_base=BASE NEW`
//! builds them.
//!
//! pprof (driver `fetchProfiles`, profile `Merge`/`combineHeaders`) labels every sample of the base
//! `pprof::base=true`, scales it by −1 and merges it with the new profile. Reports then show the
//! growth per function, with percentages of the base's total (`computeTotal`). Report nodes are
//! functions, so merging locations and functions comes down to mapping the base's nodes onto the
//! new profile's by name (or, for unnamed frames, by binary and start line).

use std::collections::HashMap;

use crate::profile::{NodeInfo, Profile, SampleType};
use crate::{PprofError, decode::to_u32};

/// pprof's `compatible`: the same period type and the same sample types, in order.
fn check_compatible(new: &Profile, base: &Profile) -> Result<(), PprofError> {
    let show = |t: &[SampleType]| {
        t.iter()
            .map(|t| format!("{}/{}", t.r#type, t.unit))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if new.period_type != base.period_type {
        return Err(PprofError::Incompatible(format!(
            "period types {}/{} and {}/{}",
            new.period_type.r#type,
            new.period_type.unit,
            base.period_type.r#type,
            base.period_type.unit
        )));
    }
    if new.sample_types != base.sample_types {
        return Err(PprofError::Incompatible(format!(
            "sample types [{}] and [{}]",
            show(&new.sample_types),
            show(&base.sample_types)
        )));
    }
    Ok(())
}

/// `ScaleN` by −1 as pprof does it (`int64(math.Round(float64(v) * -1))`), so huge values round
/// the same way.
fn negate(v: i64) -> i64 {
    (-(v as f64)).round() as i64
}

impl Profile {
    /// The profile `go tool pprof -diff_base=BASE` reports on: the samples of `self` followed by
    /// those of `base`, negated and marked as the diff base.
    ///
    /// A [`top`](crate::top) report of the result shows what grew between `base` and `self` (the
    /// leak, for two heap profiles of one process), with percentages of `base`'s total, like
    /// pprof. Both must have the same sample and period types ([`PprofError::Incompatible`]).
    /// Header fields are merged as pprof's `combineHeaders` does: the earliest time, the summed
    /// duration, the larger period, the comments of both.
    pub fn diff_base(&self, base: &Profile) -> Result<Profile, PprofError> {
        check_compatible(self, base)?;
        let mut out = self.clone();

        // Nodes: reuse the new profile's node for the same function.
        let key = |n: &NodeInfo| (n.name.clone(), n.objfile.clone(), n.start_line);
        let mut index: HashMap<(Box<str>, Box<str>, i64), u32> = out
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (key(n), i as u32))
            .collect();
        let mut node_map = Vec::with_capacity(base.nodes.len());
        for n in &base.nodes {
            let next = to_u32(out.nodes.len(), "nodes")?;
            let id = *index.entry(key(n)).or_insert(next);
            if id == next {
                out.nodes.push(n.clone());
            }
            node_map.push(id);
        }

        // Locations, then samples, with ids shifted past the new profile's.
        let loc_shift = to_u32(out.loc_ranges.len(), "locations")?;
        let frame_shift = to_u32(out.loc_nodes.len(), "frames")?;
        out.loc_nodes
            .extend(base.loc_nodes.iter().map(|&n| node_map[n as usize]));
        to_u32(out.loc_nodes.len(), "frames")?;
        out.loc_ranges.extend(
            base.loc_ranges
                .iter()
                .map(|&(a, b)| (a + frame_shift, b + frame_shift)),
        );
        to_u32(out.loc_ranges.len(), "locations")?;
        let new_samples = self.sample_count();
        let loc_offset = to_u32(out.sample_locs.len(), "sample locations")?;
        out.sample_locs
            .extend(base.sample_locs.iter().map(|&l| l + loc_shift));
        to_u32(out.sample_locs.len(), "sample locations")?;
        out.sample_offsets
            .extend(base.sample_offsets[1..].iter().map(|&o| o + loc_offset));
        out.values.extend(base.values.iter().map(|&v| negate(v)));
        if out.diff_base.is_empty() {
            out.diff_base = vec![false; new_samples];
        }
        out.diff_base
            .resize(new_samples + base.sample_count(), true);

        // combineHeaders, with the new profile first.
        if out.time_nanos == 0 || base.time_nanos < out.time_nanos {
            out.time_nanos = base.time_nanos;
        }
        out.duration_nanos = out.duration_nanos.wrapping_add(base.duration_nanos);
        if out.period == 0 || out.period < base.period {
            out.period = base.period;
        }
        let mut comments: Vec<String> = Vec::new();
        for c in self.comments.iter().chain(&base.comments) {
            if !comments.contains(c) {
                comments.push(c.clone());
            }
        }
        out.comments = comments;
        if out.default_sample_type.is_empty() {
            out.default_sample_type = base.default_sample_type.clone();
        }
        // The first mapping seen is the main binary (a profile without mappings has neither).
        if out.main_file.is_empty() && out.main_build_id.is_empty() {
            out.main_file = base.main_file.clone();
            out.main_build_id = base.main_build_id.clone();
        }
        Ok(out)
    }
}
