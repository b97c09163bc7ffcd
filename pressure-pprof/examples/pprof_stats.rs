//! Prints the size of a profile: `pprof_stats FILE` → bytes, samples, sample types.
use pressure_pprof::{Limits, Profile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::args().nth(1).ok_or("usage: pprof_stats FILE")?;
    let data = std::fs::read(&file)?;
    let profile = Profile::decode(&data, &Limits::default())?;
    let types: Vec<&str> = profile
        .sample_types()
        .iter()
        .map(|t| t.r#type.as_str())
        .collect();
    println!(
        "bytes={} samples={} types={}",
        data.len(),
        profile.sample_count(),
        types.join(",")
    );
    Ok(())
}
