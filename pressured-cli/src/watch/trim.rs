//! Drops the start-up code from the resident set once the sampling loop runs.
//!
//! Start-up (flag parsing, config, TLS roots for the actions, the runtime) touches megabytes of a large
//! binary that the sampling loop never runs again, and the kernel's fault-around maps up to 64 KiB
//! around every touched page. For every read-only, file-backed mapping without private
//! (copied-on-write) pages — code and constants of the binary and its libraries — this advises
//! `MADV_RANDOM` (no read-ahead on a later major fault) and then `MADV_DONTNEED`: the pages leave this
//! process's resident set and stay in the page cache, and the loop faults back in only the pages it
//! uses (with their fault-around: `MADV_RANDOM` does not turn that off, measured on 6.18). Mappings with private pages
//! (relocated RELRO data) are left alone, since dropping those would lose their contents.

use std::io;

/// Advises the kernel as described above; returns the bytes of resident set given back.
pub(super) fn drop_startup_pages() -> io::Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let before = resident_kib()?;
    for mapping in parse(&smaps) {
        let len = mapping.end - mapping.start;
        // SAFETY: the range is a whole mapping of this process that holds only unmodified file pages;
        // discarding them only makes the next access re-read the same bytes from the page cache.
        unsafe {
            libc::madvise(mapping.start as *mut libc::c_void, len, libc::MADV_RANDOM);
            libc::madvise(mapping.start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
    let after = resident_kib()?;
    Ok(before.saturating_sub(after) * 1024)
}

#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
}

/// The read-only, file-backed mappings whose pages are all unmodified (`Anonymous: 0 kB`).
fn parse(smaps: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    let mut current: Option<(Mapping, bool)> = None;
    for line in smaps.lines() {
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
    out
}

fn resident_kib() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0))
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
            parse(SMAPS),
            vec![
                Mapping {
                    start: 0x55d0_c000_0000,
                    end: 0x55d0_c010_0000
                },
                Mapping {
                    start: 0x55d0_c010_0000,
                    end: 0x55d0_c100_0000
                },
            ]
        );
    }

    #[test]
    fn this_process_survives_a_trim() {
        let freed = drop_startup_pages().expect("trim");
        // Still running code and reading constants afterwards.
        let v: Vec<u64> = (0..1000).collect();
        assert_eq!(v.iter().sum::<u64>(), 499_500);
        assert!(freed < 1 << 40);
    }
}
