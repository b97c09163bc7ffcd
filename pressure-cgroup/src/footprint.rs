//! What a watcher costs its own memory cgroup: the resident pages of code and constants, and the page
//! cache of its own binary.
//!
//! Three kernel behaviours make a small process look large to its memory cgroup:
//!
//! - **Fault-around.** The kernel maps a touched page of a file together with up to 64 KiB around it
//!   (when those pages are in the page cache), so the dynamic loader, libc's start-up, flag parsing,
//!   the config, the runtime and the TLS roots leave megabytes of the binary resident that the
//!   sampling loop never runs.
//! - **Readahead.** The first fault in a file mapping reads a readahead window around it (the block
//!   device's `read_ahead_kb`: 128 KiB on most nodes, 8 MiB on some virtual disks), so the whole binary
//!   soon sits in the page cache, charged to the cgroup that faulted it first: the container's.
//!
//! - **Large folios.** Since Linux 6.18 a fault maps the whole folio of the page cache that holds the
//!   page, when the folio lies within one mapping, and a binary written by large `write` calls (an
//!   image layer unpacked, `dd`, a copy) sits in the cache in folios of up to its writes' size: 1 MiB
//!   folios made a sidecar's start-up peak 6.5 MiB where 32 KiB ones gave 3 MiB.
//!
//! Two calls undo them, at any point where start-up work is done:
//!
//! 1. [`release_startup_pages`]: every file-backed mapping of the binary and its libraries is advised
//!    `MADV_RANDOM` (later faults read only the page they need, not a readahead window), the read-only
//!    ones are cut into separate mappings of 64 KiB (no folio larger than that lies within one, so a
//!    fault maps at most 64 KiB, whatever folios the file sits in), and those
//!    that are read-only and without private (copied-on-write) pages — code and constants —
//!    `MADV_DONTNEED` (their pages leave this process's resident set); free heap pages go back to the
//!    kernel (`malloc_trim`, with glibc);
//! 2. [`drop_executable_cache`]: the pages of the process's own executable that are now mapped by no
//!    process are dropped from the page cache (`POSIX_FADV_DONTNEED` on the whole of
//!    `/proc/self/exe`), which also lifts their charge; [`drop_executable_constants`] does it for the
//!    constants alone.
//!
//! Whatever runs next faults back only the pages it uses. Constants are then read a page at a time,
//! and fault-around finds few cached neighbours to map with them. Code is not: since Linux 6.16 a
//! fault in an executable mapping reads a `read_ahead_kb` window of it whatever `MADV_RANDOM` says
//! (`mm/filemap: allow arch to request folio size for exec memory`), which is why the hot code is
//! also kept together at link time (`pressured-cli/build.rs`). Dropping the cache has a price: the
//! next fault in code reads that window back from disk (a few milliseconds of kernel time for 8 MiB),
//! so a watcher drops the constants' cache before its start-up runs (then they are read page by
//! page), the whole file now and then afterwards, and trims its resident set alone in between.
//! Mappings with private pages (relocated RELRO data) are left alone, since dropping those would lose
//! their contents; shared libraries keep their page cache (other processes use it).
//!
//! Which mappings qualify is learnt once, from `/proc/self/smaps` (the kernel walks every page table
//! to write it: about 0.3 ms), read line by line through a small buffer so the trim itself adds little
//! to the peak it is meant to lower; later calls reuse the list. Mappings made after the first call (a
//! library loaded later) are left alone. A page that changes after it (a uprobe attached in the first
//! moments of the process) would be dropped with the rest.

use std::io::{self, BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;

/// The file-backed mappings, found by the first call.
static CLEAN: OnceLock<Vec<Mapping>> = OnceLock::new();

/// What one [`release_startup_pages`] call gave back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Mappings whose resident pages were dropped.
    pub mappings: usize,
}

/// Drops the resident code and constant pages of this process, as described in the [module
/// documentation](self); the page cache stays (see [`drop_executable_cache`]). Best effort: a failure
/// only costs memory.
///
/// # Errors
/// Reading `/proc/self/smaps` on the first call.
pub fn release_startup_pages() -> io::Result<Released> {
    let mappings = match CLEAN.get() {
        Some(mappings) => mappings,
        None => {
            let smaps = std::fs::File::open("/proc/self/smaps")?;
            let found = parse(BufReader::with_capacity(4096, smaps))?;
            for mapping in &found {
                // SAFETY: a whole mapping of this process; MADV_RANDOM only changes how later faults
                // read ahead.
                unsafe {
                    libc::madvise(
                        mapping.start as *mut libc::c_void,
                        mapping.end - mapping.start,
                        libc::MADV_RANDOM,
                    );
                }
            }
            for mapping in found.iter().filter(|m| m.read_only) {
                cut_into_pieces(mapping);
            }
            // Constants: their pages also leave the page cache, whatever size of folio holds them.
            // A binary written by `write` (a layer unpacked, `strip`) sits in the cache in large
            // folios; one page of such a folio that start-up touched keeps all of it cached (no
            // advice on the file can drop a mapped folio), and fault-around then maps 64 KiB of
            // constants around every later read (1.3 MiB more at the sidecar's end, measured).
            // MADV_PAGEOUT reclaims what only this process maps, splitting a folio the range covers
            // in part; code is left alone (a code fault reads a whole readahead window back).
            // Relocated constants (RELRO) qualify too: the advice never loses a private page (it
            // would only swap it out), and their unrelocated pages are file pages like the others.
            for mapping in found.iter().filter(|m| m.read_only && !m.executable) {
                // SAFETY: a whole read-only mapping of this process; reclaimed file pages are read
                // back from the file when next touched, private ones stay (or are swapped).
                unsafe {
                    libc::madvise(
                        mapping.start as *mut libc::c_void,
                        mapping.end - mapping.start,
                        libc::MADV_PAGEOUT,
                    );
                }
            }
            CLEAN.get_or_init(|| found)
        }
    };
    let mut released = Released { mappings: 0 };
    for mapping in mappings.iter().filter(|m| m.clean) {
        let len = mapping.end - mapping.start;
        // SAFETY: the range is a whole mapping of this process that held only unmodified file pages
        // when it was listed, and read-only mappings do not change; discarding them only makes the
        // next access re-read the same bytes.
        if unsafe { libc::madvise(mapping.start as *mut libc::c_void, len, libc::MADV_DONTNEED) }
            == 0
        {
            released.mappings += 1;
        }
    }
    // Heap pages that start-up's allocations (discovery, config, JSON) left free go back too.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory of glibc's allocator to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    Ok(released)
}

/// The size of the pieces read-only file mappings are cut into: the kernel's default fault-around.
const PIECE: usize = 64 * 1024;

/// Cuts a read-only file mapping into separate mappings of [`PIECE`] bytes, so that a fault in it maps
/// at most one piece. Since Linux 6.18 a fault maps the whole page-cache folio holding the page when
/// the folio lies within the mapping (`filemap_map_pages`, `finish_fault`); no advice turns that off,
/// but no folio larger than a piece lies within one. Every other piece is advised
/// `MADV_NOHUGEPAGE` (keep it in small pages: no khugepaged collapse of the code), which changes its
/// flags and so keeps the kernel from merging it with its neighbours again. About 200 mappings for
/// `pressured`'s 12 MB; a failed advice only leaves two pieces joined.
fn cut_into_pieces(mapping: &Mapping) {
    // Pieces at addresses aligned to their size, as the kernel aligns its fault-around window: a
    // fault then maps what it would map from small folios, no less.
    let mut start = (mapping.start / PIECE + 1) * PIECE;
    while start < mapping.end {
        let len = PIECE.min(mapping.end - start);
        // SAFETY: part of a read-only file mapping of this process; the advice only sets a flag on
        // it (which splits the mapping there), no page changes.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_NOHUGEPAGE);
        }
        start += 2 * PIECE;
    }
}

/// Drops the pages of this process's executable that no process maps from the page cache, lifting
/// their charge; returns whether the advice was taken (`false` when `/proc/self/exe` cannot be
/// opened, e.g. a binary deleted since it started).
///
/// A code path run for the first time (a first event, an action) reads a readahead window of the
/// binary — on kernels since 6.16 a whole `read_ahead_kb` of it, whatever `MADV_RANDOM` says, for
/// executable mappings — which stays cached and charged to the watcher's cgroup after that code has
/// run. A watcher calls this now and then (`pressured`: every 30 s) to keep the charge to the pages it
/// maps. Costs one `open` and one `fadvise` over the whole file, whose cost grows with the cached
/// pages it drops: a readahead window near the end of the loaded segments runs on into what follows
/// them (symbols, debug information), which no process maps, so that is dropped too (node mode, 8 MiB
/// windows: 4.6 MB of the binary's unloaded tail stayed charged when only the loaded part was
/// dropped). Pages it drops are re-read from disk when next run.
pub fn drop_executable_cache() -> bool {
    // 0: to the end of the file.
    drop_ranges([(0, 0)])
}

/// Like [`drop_executable_cache`], for the executable's constants only: the page cache of its loaded
/// segments that are not executable (read-only data, unwind tables, the initial contents of relocated
/// data) is dropped, its code's stays. For the start of a process: constants are then read page by
/// page, and fault-around finds no cached neighbours to map with them; dropping code would gain
/// nothing there (since Linux 6.16 its next fault reads a whole `read_ahead_kb` window back, mapped
/// 64 KiB at a time) and cost that read. Falls back to the whole file when the program headers
/// cannot be read.
pub fn drop_executable_constants() -> bool {
    match loaded_segments() {
        Some(segments) => drop_ranges(
            segments
                .filter(|s| s.p_flags & libc::PF_X == 0)
                .map(|s| (s.p_offset, s.p_offset + s.p_filesz)),
        ),
        None => drop_ranges([(0, 0)]),
    }
}

/// `POSIX_FADV_DONTNEED` on each `(start, end)` byte range of `/proc/self/exe` (`end` 0: to the end
/// of the file); whether every advice was taken.
fn drop_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> bool {
    let Ok(exe) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    let mut ok = true;
    for (start, end) in ranges {
        let (Ok(offset), Ok(len)) = (
            i64::try_from(start),
            i64::try_from(end.saturating_sub(start)),
        ) else {
            continue;
        };
        // SAFETY: a plain advice on an open descriptor; clean pages mapped by no process are
        // dropped, dirty or mapped ones stay.
        ok &=
            unsafe { libc::posix_fadvise(exe.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED) }
                == 0;
    }
    ok
}

/// The end, in the executable's file, of its last loaded segment; `None` when the program headers
/// cannot be read.
#[cfg(test)]
fn loaded_file_end() -> Option<u64> {
    loaded_segments()?.map(|s| s.p_offset + s.p_filesz).max()
}

/// The executable's `PT_LOAD` program headers, which the kernel hands the process through the
/// auxiliary vector; `None` when they cannot be read.
fn loaded_segments() -> Option<impl Iterator<Item = &'static libc::Elf64_Phdr>> {
    // SAFETY: getauxval only reads the auxiliary vector; 0 means absent.
    let (phdr, phnum, phent) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR),
            libc::getauxval(libc::AT_PHNUM),
            libc::getauxval(libc::AT_PHENT),
        )
    };
    if phdr == 0 || phnum == 0 || phent != size_of::<libc::Elf64_Phdr>() as u64 {
        return None;
    }
    let phnum = usize::try_from(phnum).ok()?;
    // SAFETY: AT_PHDR is the address of the executable's program headers, mapped for the life of the
    // process, AT_PHNUM of them, each AT_PHENT bytes long (checked above to be an Elf64_Phdr).
    let headers =
        unsafe { std::slice::from_raw_parts(phdr as usize as *const libc::Elf64_Phdr, phnum) };
    Some(headers.iter().filter(|h| h.p_type == libc::PT_LOAD))
}

#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    /// Read-only and without private pages: its resident pages can be dropped.
    clean: bool,
    /// Mapped read-only (with private pages or not).
    read_only: bool,
    /// Code.
    executable: bool,
}

/// The file-backed mappings; `clean` when read-only with all pages unmodified (`Anonymous: 0 kB`).
fn parse(mut smaps: impl BufRead) -> io::Result<Vec<Mapping>> {
    let mut out = Vec::new();
    let mut current: Option<Mapping> = None;
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
            out.extend(current.take());
            let perms = fields.next().unwrap_or("");
            let inode = fields.nth(2).unwrap_or("0");
            let path = fields.next().unwrap_or("");
            if inode != "0" && path.starts_with('/') {
                current = Some(Mapping {
                    start,
                    end,
                    clean: perms.starts_with('r') && !perms.contains('w'),
                    read_only: perms.starts_with('r') && !perms.contains('w'),
                    executable: perms.contains('x'),
                });
            }
        } else if first == "Anonymous:"
            && fields.next() != Some("0")
            && let Some(m) = current.as_mut()
        {
            m.clean = false;
        }
    }
    out.extend(current);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trims of this process's pages and page cache, run one at a time: a trim in one test
    /// (its first call pages out the binary's constants) would change the cache another measures.
    static TRIMS: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
    fn lists_file_mappings_and_marks_the_clean_read_only_ones() {
        assert_eq!(
            parse(SMAPS.as_bytes()).expect("parse"),
            vec![
                Mapping {
                    start: 0x55d0_c000_0000,
                    end: 0x55d0_c010_0000,
                    clean: true,
                    read_only: true,
                    executable: false,
                },
                Mapping {
                    start: 0x55d0_c010_0000,
                    end: 0x55d0_c100_0000,
                    clean: true,
                    read_only: true,
                    executable: true,
                },
                Mapping {
                    start: 0x55d0_c100_0000,
                    end: 0x55d0_c108_0000,
                    clean: false,
                    read_only: true,
                    executable: false,
                },
                Mapping {
                    start: 0x55d0_c108_0000,
                    end: 0x55d0_c109_0000,
                    clean: false,
                    read_only: false,
                    executable: false,
                },
            ]
        );
    }

    #[test]
    fn this_process_survives_a_trim_and_gives_back_pages() {
        let _one_at_a_time = TRIMS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let resident_kib = || -> u64 {
            std::fs::read_to_string("/proc/self/status")
                .expect("status")
                .lines()
                .find_map(|l| l.strip_prefix("RssFile:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .expect("RssFile")
        };
        for round in 0..2 {
            // The first round lists the mappings, the later ones reuse the list. Other tests run
            // code in this process meanwhile and fault pages back in, so a round may try a few
            // times to see the drop.
            let mut seen = Vec::new();
            let dropped = (0..5).any(|_| {
                let before = resident_kib();
                let released = release_startup_pages().expect("trim");
                let after = resident_kib();
                // Still running code and reading constants afterwards.
                let v: Vec<u64> = (0..1000).collect();
                assert_eq!(v.iter().sum::<u64>(), 499_500);
                assert!(
                    released.mappings > 0,
                    "round {round}: a test binary has code mappings"
                );
                seen.push((before, after));
                after < before
            });
            assert!(
                dropped,
                "round {round}: file-backed RSS (before, after) in kB: {seen:?}"
            );
        }
    }

    /// A file written in 1 MiB `write` calls (large folios where the file system has them: ext4
    /// since 6.16), mapped twice: one byte touched every 512 KiB maps at most 64 KiB per touch in the
    /// mapping cut into pieces, whatever the uncut one maps (on 6.18 and ext4: whole 1 MiB folios).
    #[test]
    fn a_fault_in_a_cut_mapping_maps_one_piece() {
        const LEN: usize = 8 << 20;
        let dir = std::env::current_exe().expect("exe");
        let path = dir.with_file_name(format!("footprint-folios-{}", std::process::id()));
        struct Remove<'a>(&'a std::path::Path);
        impl Drop for Remove<'_> {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(self.0);
            }
        }
        let _remove = Remove(&path);
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&path).expect("create");
            let chunk: Vec<u8> = (0..1 << 20)
                .map(|i: u32| (i.wrapping_mul(31) >> 3) as u8)
                .collect();
            for _ in 0..LEN >> 20 {
                file.write_all(&chunk).expect("write");
            }
        }
        let file = std::fs::File::open(&path).expect("open");
        let (cut, uncut) = (
            map_read_only(&file, LEN, libc::MAP_PRIVATE) as usize,
            map_read_only(&file, LEN, libc::MAP_PRIVATE) as usize,
        );
        cut_into_pieces(&Mapping {
            start: cut,
            end: cut + LEN,
            clean: true,
            read_only: true,
            executable: false,
        });
        let touches = LEN / (512 << 10);
        let resident_kib = |start: usize| -> (usize, u64) {
            for offset in (4096..LEN).step_by(512 << 10) {
                // SAFETY: within the mapping.
                std::hint::black_box(unsafe {
                    std::ptr::read_volatile((start + offset) as *const u8)
                });
            }
            let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
            let (mut mappings, mut rss) = (0, 0);
            let mut inside = false;
            for line in smaps.lines() {
                if let Some((range, _)) = line.split_once(' ')
                    && let Some((a, b)) = range.split_once('-')
                    && let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = a >= start && b <= start + LEN;
                    mappings += usize::from(inside);
                } else if inside && let Some(v) = line.strip_prefix("Rss:") {
                    rss += v
                        .trim()
                        .trim_end_matches(" kB")
                        .parse::<u64>()
                        .expect("Rss");
                }
            }
            (mappings, rss)
        };
        let (cut_mappings, cut_rss) = resident_kib(cut);
        let (uncut_mappings, uncut_rss) = resident_kib(uncut);
        for ptr in [cut, uncut] {
            // SAFETY: unmapping the mappings made above.
            unsafe { libc::munmap(ptr as *mut libc::c_void, LEN) };
        }
        assert_eq!(uncut_mappings, 1);
        // mmap aligns to pages only: the pieces start at the first 64 KiB boundary.
        let expected = LEN / PIECE + usize::from(cut % PIECE != 0);
        assert_eq!(cut_mappings, expected, "one mapping per piece");
        assert!(
            cut_rss <= (touches * PIECE / 1024) as u64,
            "{touches} touches mapped {cut_rss} KiB cut ({uncut_rss} KiB uncut)"
        );
        eprintln!(
            "{touches} touches: {cut_rss} KiB resident cut into pieces, {uncut_rss} KiB uncut"
        );
    }

    /// A new read-only mapping (`MAP_PRIVATE` or `MAP_SHARED`) of the first `len` bytes of `file`; the
    /// caller unmaps it.
    fn map_read_only(file: &std::fs::File, len: usize, flags: libc::c_int) -> *mut libc::c_void {
        // SAFETY: a new mapping of an open file at an address the kernel picks; nothing aliases it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                flags,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(
            ptr,
            libc::MAP_FAILED,
            "mmap: {}",
            io::Error::last_os_error()
        );
        ptr
    }

    /// Pages of the first `len` bytes of this test binary in the page cache and in all, through
    /// `mincore` on a fresh mapping of them (mapping a file faults nothing in).
    fn cached_pages_of_exe(len: u64) -> (usize, usize) {
        let file = std::fs::File::open("/proc/self/exe").expect("exe");
        let len = usize::try_from(len).expect("len");
        let ptr = map_read_only(&file, len, libc::MAP_SHARED);
        let mut vec = vec![0u8; len.div_ceil(4096)];
        // SAFETY: `vec` has one byte per page of the mapping.
        let rc = unsafe { libc::mincore(ptr, len, vec.as_mut_ptr()) };
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(ptr, len) };
        assert_eq!(rc, 0, "mincore");
        (vec.iter().filter(|b| **b & 1 != 0).count(), vec.len())
    }

    #[test]
    fn the_loaded_part_of_the_executable_is_what_its_mappings_cover() {
        let end = loaded_file_end().expect("PT_LOAD headers");
        let file = std::fs::metadata("/proc/self/exe").expect("exe").len();
        // A test binary carries its debug information after the loaded segments.
        assert!(end < file, "loaded end {end}, file {file}");
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        let exe = std::fs::read_link("/proc/self/exe").expect("exe link");
        let hex = |s: &str| u64::from_str_radix(s, 16).expect("hex");
        let mut furthest = 0;
        for line in maps.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 6 && std::path::Path::new(f[5]) == exe.as_path() {
                let (start, stop) = f[0].split_once('-').expect("range");
                furthest = furthest.max(hex(f[2]) + hex(stop) - hex(start));
            }
        }
        // The mappings of the file end in the page that holds the end of its last loaded segment.
        assert_eq!(furthest, end.next_multiple_of(4096), "{maps}");
    }

    #[test]
    fn the_executables_unused_page_cache_is_dropped() {
        let _one_at_a_time = TRIMS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A freshly linked binary may still be dirty: written back first, as a deployed one is; then
        // read whole into the page cache, as an 8 MiB readahead window does.
        let mut exe = std::fs::File::open("/proc/self/exe").expect("exe");
        exe.sync_all().expect("fsync of the test binary");
        io::copy(&mut exe, &mut io::sink()).expect("read the test binary");
        let loaded = loaded_file_end().expect("PT_LOAD headers");
        let (before, total) = cached_pages_of_exe(loaded);
        release_startup_pages().expect("trim");
        let dropped = drop_executable_cache();
        let (after, _) = cached_pages_of_exe(loaded);
        assert!(dropped, "POSIX_FADV_DONTNEED on /proc/self/exe");
        assert!(
            before * 10 >= total * 9,
            "read whole: {before} of {total} pages cached"
        );
        // What stays is what this process maps again (other tests run code meanwhile).
        let exe = std::fs::read_link("/proc/self/exe").expect("exe link");
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut mapped_kib = 0;
        let mut in_exe = false;
        for line in smaps.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first()
                .is_some_and(|w| w.contains('-') && !w.ends_with(':'))
            {
                in_exe = f.len() >= 6 && std::path::Path::new(f[5]) == exe.as_path();
            } else if in_exe && f.first() == Some(&"Rss:") {
                mapped_kib += f[1].parse::<usize>().expect("Rss");
            }
        }
        assert!(
            after < before && after <= mapped_kib / 4 + total / 8,
            "{after} of the {total} loaded pages of the test binary still cached after the trim \
             (before: {before}; mapped now: {} pages)",
            mapped_kib / 4
        );
    }
}
