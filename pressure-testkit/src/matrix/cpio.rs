//! A `newc` cpio archive writer: the format the kernel unpacks as an initramfs.
//!
//! Written here (instead of piping through `cpio -o -H newc`) so the archive is built from an in-memory
//! list of entries with exact modes, device nodes and symlinks, and needs no root-owned staging tree.
//! The archive is left uncompressed: the kernel accepts that, and TCG decompresses gzip slowly.
//! Format: <https://docs.kernel.org/driver-api/early-userspace/buffer-format.html>.

use std::collections::BTreeMap;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// What one archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    Symlink { target: String },
    CharDev { major: u32, minor: u32, mode: u32 },
}

/// An initramfs under construction: absolute guest paths mapped to files, directories, symlinks and
/// character devices. Parent directories are created implicitly; a later entry for a path replaces
/// an earlier one.
#[derive(Debug, Clone, Default)]
pub struct Initramfs {
    nodes: BTreeMap<String, Node>,
}

impl Initramfs {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file with the given permission bits (e.g. `0o755`).
    pub fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> &mut Self {
        self.insert(path, Node::File { data, mode });
        self
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.insert(path, Node::Dir);
        self
    }

    /// Adds a symbolic link `path -> target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.insert(
            path,
            Node::Symlink {
                target: target.to_string(),
            },
        );
        self
    }

    /// Adds a character device node (e.g. `/dev/console`, 5:1), so PID 1 has a console before devtmpfs.
    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32, mode: u32) -> &mut Self {
        self.insert(path, Node::CharDev { major, minor, mode });
        self
    }

    /// Whether the archive holds `path` (normalised like the inserting methods do).
    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(&normalise(path))
    }

    /// The total size of the regular files' contents, in bytes.
    pub fn payload_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match n {
                Node::File { data, .. } => data.len() as u64,
                _ => 0,
            })
            .sum()
    }

    fn insert(&mut self, path: &str, node: Node) {
        let path = normalise(path);
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.nodes.entry(parent.clone()).or_insert(Node::Dir);
        }
        self.nodes.insert(path, node);
    }

    /// The archive in `newc` format, entries in path order (parents before children), with the trailer.
    pub fn to_newc(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload_bytes() as usize + 128 * self.nodes.len());
        for (ino, (path, node)) in self.nodes.iter().enumerate() {
            let ino = ino as u32 + 1;
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match node {
                Node::Dir => (S_IFDIR | 0o755, &[], (0, 0)),
                Node::File { data, mode } => (S_IFREG | (mode & 0o7777), data, (0, 0)),
                Node::Symlink { target } => (S_IFLNK | 0o777, target.as_bytes(), (0, 0)),
                Node::CharDev { major, minor, mode } => {
                    (S_IFCHR | (mode & 0o7777), &[], (*major, *minor))
                }
            };
            let nlink = if matches!(node, Node::Dir) { 2 } else { 1 };
            write_entry(&mut out, path, ino, mode, nlink, data, rdev);
        }
        write_entry(&mut out, "TRAILER!!!", 0, 0, 1, &[], (0, 0));
        out
    }
}

/// A path without leading or trailing slashes (cpio names are relative: `bin/sh`).
fn normalise(path: &str) -> String {
    path.trim_matches('/').to_string()
}

fn write_entry(
    out: &mut Vec<u8>,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    data: &[u8],
    rdev: (u32, u32),
) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime: fixed, so equal inputs give equal archives
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One parsed entry: name, mode, (rdev major, minor), data.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Splits a newc archive back into entries.
    fn parse(mut buf: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        let total = buf.len();
        loop {
            assert_eq!(
                &buf[..6],
                b"070701",
                "magic at offset {}",
                total - buf.len()
            );
            let field = |i: usize| {
                u32::from_str_radix(
                    std::str::from_utf8(&buf[6 + 8 * i..14 + 8 * i]).unwrap(),
                    16,
                )
                .unwrap()
            };
            let (mode, size, rdev, namesize) = (
                field(1),
                field(6) as usize,
                (field(9), field(10)),
                field(11) as usize,
            );
            let name = String::from_utf8(buf[110..110 + namesize - 1].to_vec()).unwrap();
            let data_start = (110 + namesize).div_ceil(4) * 4;
            let data = buf[data_start..data_start + size].to_vec();
            let next = (data_start + size).div_ceil(4) * 4;
            buf = &buf[next..];
            if name == "TRAILER!!!" {
                assert!(buf.is_empty(), "bytes after the trailer");
                return out;
            }
            out.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn entries_round_trip_with_parents_first_and_alignment() {
        let mut fs = Initramfs::new();
        fs.file("/bin/hog", b"abcde".to_vec(), 0o755)
            .symlink("/bin/sh", "busybox")
            .char_dev("/dev/console", 5, 1, 0o600)
            .file("/etc/matrix.env", b"X=1\n".to_vec(), 0o644);
        let archive = fs.to_newc();
        assert_eq!(archive.len() % 4, 0);
        let entries = parse(&archive);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/hog",
                "bin/sh",
                "dev",
                "dev/console",
                "etc",
                "etc/matrix.env"
            ]
        );
        let hog = &entries[1];
        assert_eq!((hog.1, hog.3.as_slice()), (S_IFREG | 0o755, &b"abcde"[..]));
        assert_eq!(entries[2].1 & S_IFLNK, S_IFLNK);
        assert_eq!(entries[2].3, b"busybox");
        assert_eq!((entries[4].1, entries[4].2), (S_IFCHR | 0o600, (5, 1)));
        assert_eq!(entries[0].1, S_IFDIR | 0o755);
        assert_eq!(fs.payload_bytes(), 9);
        assert!(fs.contains("bin/hog") && fs.contains("/etc/") && !fs.contains("/init"));
    }

    #[test]
    fn later_entry_replaces_earlier_one() {
        let mut fs = Initramfs::new();
        fs.file("/init", b"old".to_vec(), 0o755)
            .file("init", b"new".to_vec(), 0o700);
        let entries = parse(&fs.to_newc());
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].1, entries[0].3.as_slice()),
            (S_IFREG | 0o700, &b"new"[..])
        );
    }
}
