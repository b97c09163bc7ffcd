//! Gives back the resident pages of code and constants that start-up touched and the process will not
//! run again.
//!
//! The kernel maps a touched page of a file together with up to 64 KiB around it (fault-around), so the
//! dynamic loader's relocation work, libc's start-up, flag parsing, the config, the runtime and the TLS
//! roots leave megabytes of the binary and its libraries resident that the sampling loop never uses.
//! For every read-only, file-backed mapping without private (copied-on-write) pages — code and
//! constants of the binary and its libraries — this advises `MADV_DONTNEED`: the pages leave this
//! process's resident set and stay in the page cache, and whatever runs next faults back in only the
//! pages it uses. Mappings with private pages (relocated RELRO data) are left alone, since dropping
//! those would lose their contents. `pressured` calls it at the start of `main`, when a watch mode's
//! start-up is done, and after the first tick of its loop (see `scripts/sidecar-footprint.sh`).
//!
//! Which mappings qualify is learnt once, from `/proc/self/smaps` (the kernel walks every page table
//! to write it: about 0.3 ms here), read line by line through a small buffer so the trim itself adds
//! little to the peak it is meant to lower; later calls reuse the list. Mappings made after the first
//! call (a library loaded later) are left alone. A page that changes after it (a uprobe attached in
//! the first moments of the process) would be dropped with the rest.

use std::io::{self, BufRead, BufReader};
use std::sync::OnceLock;

/// The clean read-only file mappings, found by the first call.
static CLEAN: OnceLock<Vec<Mapping>> = OnceLock::new();

/// Advises the kernel as described above; returns how many mappings it gave back pages of.
pub(crate) fn drop_startup_pages() -> io::Result<usize> {
    let mappings = match CLEAN.get() {
        Some(mappings) => mappings,
        None => {
            let smaps = std::fs::File::open("/proc/self/smaps")?;
            let found = parse(BufReader::with_capacity(4096, smaps))?;
            CLEAN.get_or_init(|| found)
        }
    };
    let mut dropped = 0;
    for mapping in mappings {
        let len = mapping.end - mapping.start;
        // SAFETY: the range is a whole mapping of this process that held only unmodified file pages
        // when it was listed, and read-only mappings do not change; discarding them only makes the
        // next access re-read the same bytes from the page cache.
        if unsafe { libc::madvise(mapping.start as *mut libc::c_void, len, libc::MADV_DONTNEED) }
            == 0
        {
            dropped += 1;
        }
    }
    Ok(dropped)
}

#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
}

/// The read-only, file-backed mappings whose pages are all unmodified (`Anonymous: 0 kB`).
fn parse(mut smaps: impl BufRead) -> io::Result<Vec<Mapping>> {
    let mut out = Vec::new();
    let mut current: Option<(Mapping, bool)> = None;
    let mut line = String::with_capacity(256);
    loop {
        line.clear();
        if smaps.read_line(&mut line)? == 0 {
            break;
        }
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            if let Some((m, true)) = current.take() {
                out.push(m);
            }
            let perms = fields.next().unwrap_or("");
            let inode = fields.nth(2).unwrap_or("0");
            let path = fields.next().unwrap_or("");
            let candidate = perms.starts_with('r')
                && !perms.contains('w')
                && inode != "0"
                && path.starts_with('/');
            current = Some((Mapping { start, end }, candidate));
        } else if first == "Anonymous:"
            && fields.next() != Some("0")
            && let Some((_, candidate)) = current.as_mut()
        {
            *candidate = false;
        }
    }
    if let Some((m, true)) = current {
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0100000 r--p 00000000 fd:01 1234 /usr/bin/pressured
Rss:                 400 kB
Anonymous:             0 kB
55d0c0100000-55d0c1000000 r-xp 00100000 fd:01 1234 /usr/bin/pressured
Anonymous:             0 kB
55d0c1000000-55d0c1080000 r--p 01000000 fd:01 1234 /usr/bin/pressured
Anonymous:           512 kB
55d0c1080000-55d0c1090000 rw-p 01080000 fd:01 1234 /usr/bin/pressured
Anonymous:            64 kB
55d0c2000000-55d0c2100000 rw-p 00000000 00:00 0 [heap]
Anonymous:           100 kB
7f0000000000-7f0000001000 r--p 00000000 00:00 0 [vvar]
Anonymous:             0 kB
";

    #[test]
    fn picks_clean_read_only_file_mappings_only() {
        assert_eq!(
            parse(SMAPS.as_bytes()).expect("parse"),
            vec![
                Mapping {
                    start: 0x55d0_c000_0000,
                    end: 0x55d0_c010_0000,
                },
                Mapping {
                    start: 0x55d0_c010_0000,
                    end: 0x55d0_c100_0000,
                },
            ]
        );
    }

    #[test]
    fn this_process_survives_a_trim_and_gives_back_pages() {
        let resident_kib = || -> u64 {
            std::fs::read_to_string("/proc/self/status")
                .expect("status")
                .lines()
                .find_map(|l| l.strip_prefix("RssFile:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .expect("RssFile")
        };
        for round in 0..2 {
            // The first round lists the mappings, the second reuses the list.
            let before = resident_kib();
            let dropped = drop_startup_pages().expect("trim");
            let after = resident_kib();
            // Still running code and reading constants afterwards.
            let v: Vec<u64> = (0..1000).collect();
            assert_eq!(v.iter().sum::<u64>(), 499_500);
            assert!(
                dropped > 0,
                "round {round}: a test binary has code mappings"
            );
            assert!(
                after < before,
                "round {round}: file-backed RSS {before} kB -> {after} kB"
            );
        }
    }
}
