//! Prints `go tool pprof -top`-style output: `pprof_top FILE [SAMPLE_INDEX] [NODECOUNT] [cum]`.
use pressure_pprof::{Limits, Profile, TopOptions, top};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .ok_or("usage: pprof_top FILE [SAMPLE_INDEX] [NODECOUNT] [cum]")?;
    let sample_index = args.next().filter(|s| !s.is_empty() && s != "-");
    let node_count = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let cum = args.next().is_some_and(|s| s == "cum");
    let profile = Profile::decode(&std::fs::read(file)?, &Limits::default())?;
    let report = top(&profile, &TopOptions::new(sample_index, node_count, cum))?;
    report.write_text(&mut std::io::stdout().lock())?;
    Ok(())
}
