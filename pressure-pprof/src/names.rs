//! The names pprof shows for functions (its symbolizer's clean-up of C++-looking names).

/// The name pprof shows for a function: its symbolizer's demangling step (`symbolizer.Demangle`
/// with the default options) keeps an already demangled name and otherwise simplifies the system
/// name when it looks like demangled C++ (dropping `(...)` and `<...>`).
///
/// Mangled C++/Rust symbols (`_Z…`, `_R…`) are not demangled here; Go profiles never contain them.
pub(crate) fn display_name(name: &str, system_name: &str) -> String {
    if !name.is_empty() && system_name != name {
        return name.to_owned();
    }
    let mut n = system_name.to_owned();
    if looks_like_demangled_cpp(&n) {
        n = remove_matching(&n, b'(', b')');
        n = remove_matching(&n, b'<', b'>');
    }
    n
}

/// `looksLikeDemangledCPlusPlus` from pprof's symbolizer.
fn looks_like_demangled_cpp(s: &str) -> bool {
    if s.contains(".<") || s.contains("]).") {
        return false;
    }
    s.contains(['<', '>', '[', ']']) || s.contains("::")
}

/// `removeMatching` from pprof's symbolizer: drops nested `start…end` groups, unless unbalanced.
fn remove_matching(name: &str, start: u8, end: u8) -> String {
    let mut name = name.as_bytes().to_vec();
    let mut nesting = 0i64;
    let mut first = 0usize;
    let mut current = 0usize;
    while let Some(index) = name[current..].iter().position(|&c| c == start || c == end) {
        current += index;
        if name[current] == start {
            nesting += 1;
            if nesting == 1 {
                first = current;
            }
        } else {
            nesting -= 1;
            if nesting < 0 {
                return String::from_utf8_lossy(&name).into_owned();
            }
            if nesting == 0 {
                name.drain(first..=current);
                current = first;
                continue;
            }
        }
        current += 1;
    }
    String::from_utf8_lossy(&name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_names_pass_through() {
        assert_eq!(display_name("main.(*T).M", "main.(*T).M"), "main.(*T).M");
        assert_eq!(
            display_name("main.Map[...]", "main.Map[...]"),
            "main.Map[...]"
        );
        assert_eq!(
            display_name("main.(*L[...]).Push", "main.(*L[...]).Push"),
            "main.(*L[...]).Push"
        );
        assert_eq!(display_name("", "sys"), "sys");
    }

    #[test]
    fn cpp_like_names_are_simplified() {
        assert_eq!(display_name("", "ns::f<int>(char)"), "ns::f");
        assert_eq!(display_name("a::b(c(d))e", "a::b(c(d))e"), "a::be");
        assert_eq!(display_name("a::b)(", "a::b)("), "a::b)(");
        assert_eq!(display_name("pretty", "_Zmangled"), "pretty");
    }
}
