//! The C event struct and its `#[repr(C)]` mirror agree (read from the object's BTF), and the
//! committed object is what `scripts/build-bpf.sh` builds.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

use pressure_ebpf::{BPF_OBJECT, RawCgPath, RawOomEvent};

fn u16_at(b: &[u8], o: usize) -> usize {
    usize::from(u16::from_le_bytes([b[o], b[o + 1]]))
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> usize {
    usize::try_from(u64::from_le_bytes(b[o..o + 8].try_into().unwrap())).unwrap()
}

/// The bytes of an ELF64 (little-endian) section.
fn elf_section<'a>(elf: &'a [u8], name: &str) -> &'a [u8] {
    assert_eq!(&elf[..4], b"\x7fELF");
    let shoff = u64_at(elf, 0x28);
    let (shentsize, shnum, shstrndx) = (u16_at(elf, 0x3a), u16_at(elf, 0x3c), u16_at(elf, 0x3e));
    let sh = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(elf, sh(shstrndx) + 0x18);
    (0..shnum)
        .find_map(|i| {
            let n = strtab + u32_at(elf, sh(i)) as usize;
            let end = elf[n..].iter().position(|&c| c == 0)?;
            (&elf[n..n + end] == name.as_bytes()).then(|| {
                let (off, size) = (u64_at(elf, sh(i) + 0x18), u64_at(elf, sh(i) + 0x20));
                &elf[off..off + size]
            })
        })
        .unwrap_or_else(|| panic!("no section {name}"))
}

/// Struct name -> (size, member name -> byte offset), from a raw BTF blob.
fn btf_structs(btf: &[u8]) -> HashMap<String, (usize, HashMap<String, usize>)> {
    assert_eq!(u16_at(btf, 0), 0xeb9f, "BTF magic");
    let hdr_len = u32_at(btf, 4) as usize;
    let (type_off, type_len) = (u32_at(btf, 8) as usize, u32_at(btf, 12) as usize);
    let str_off = u32_at(btf, 16) as usize;
    let types = &btf[hdr_len + type_off..hdr_len + type_off + type_len];
    let strs = &btf[hdr_len + str_off..];
    let name = |off: u32| {
        let s = &strs[off as usize..];
        String::from_utf8_lossy(&s[..s.iter().position(|&c| c == 0).unwrap()]).into_owned()
    };
    let mut out = HashMap::new();
    let mut p = 0;
    while p < types.len() {
        let (name_off, info, size) = (u32_at(types, p), u32_at(types, p + 4), u32_at(types, p + 8));
        let (kind, vlen, kflag) = ((info >> 24) & 0x1f, (info & 0xffff) as usize, info >> 31);
        p += 12;
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => vlen * 12, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => vlen * 8,           // ENUM, FUNC_PROTO
            _ => 0,
        };
        if kind == 4 {
            let members = (0..vlen)
                .map(|i| {
                    let m = p + i * 12;
                    let bits = u32_at(types, m + 8);
                    let bits = if kflag == 1 { bits & 0xff_ffff } else { bits };
                    (name(u32_at(types, m)), (bits / 8) as usize)
                })
                .collect();
            out.insert(name(name_off), (size as usize, members));
        }
        p += extra;
    }
    out
}

#[test]
fn raw_event_layout_matches_btf() {
    let structs = btf_structs(elf_section(BPF_OBJECT, ".BTF"));
    let (size, m) = &structs["oom_event"];
    assert_eq!(*size, size_of::<RawOomEvent>());
    let rust = [
        ("ts_boot_ns", offset_of!(RawOomEvent, ts_boot_ns)),
        ("pid", offset_of!(RawOomEvent, pid)),
        ("tgid", offset_of!(RawOomEvent, tgid)),
        ("uid", offset_of!(RawOomEvent, uid)),
        ("oom_score_adj", offset_of!(RawOomEvent, oom_score_adj)),
        ("trigger_pid", offset_of!(RawOomEvent, trigger_pid)),
        ("trigger_tgid", offset_of!(RawOomEvent, trigger_tgid)),
        ("flags", offset_of!(RawOomEvent, flags)),
        ("_pad", offset_of!(RawOomEvent, pad)),
        ("rss_anon", offset_of!(RawOomEvent, rss_anon)),
        ("rss_file", offset_of!(RawOomEvent, rss_file)),
        ("rss_shmem", offset_of!(RawOomEvent, rss_shmem)),
        ("comm", offset_of!(RawOomEvent, comm)),
        ("trigger_comm", offset_of!(RawOomEvent, trigger_comm)),
        ("memcg", offset_of!(RawOomEvent, memcg)),
        ("dfl", offset_of!(RawOomEvent, dfl)),
    ];
    assert_eq!(m.len(), rust.len(), "C members: {m:?}");
    for (field, off) in rust {
        assert_eq!(m.get(field), Some(&off), "oom_event.{field}");
    }
    let (size, m) = &structs["oom_cg_path"];
    assert_eq!(*size, size_of::<RawCgPath>());
    let rust = [
        ("id", offset_of!(RawCgPath, id)),
        ("depth", offset_of!(RawCgPath, depth)),
        ("truncated", offset_of!(RawCgPath, truncated)),
        ("names", offset_of!(RawCgPath, names)),
    ];
    assert_eq!(m.len(), rust.len(), "C members: {m:?}");
    for (field, off) in rust {
        assert_eq!(m.get(field), Some(&off), "oom_cg_path.{field}");
    }
}

#[test]
fn committed_object_is_fresh() {
    let tools = ["clang", "llvm-strip"]
        .iter()
        .all(|t| Command::new(t).arg("--version").output().is_ok())
        && Path::new("/usr/include/bpf/bpf_helpers.h").exists();
    if !tools {
        pressure_testkit::skip_or_fail(
            "committed_object_is_fresh",
            "clang, llvm-strip or libbpf-dev is missing (to rebuild the BPF object)",
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check-bpf-object.sh");
    let out = Command::new(script)
        .output()
        .expect("run check-bpf-object.sh");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
