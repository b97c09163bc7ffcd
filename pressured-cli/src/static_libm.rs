//! The trigonometric functions of a static build (the image: `-C target-feature=+crt-static`).
//!
//! Static glibc's libm links each of `asin`/`acos`, `atan2`, `sin`/`cos` and `tan` once per CPU
//! variant it picks from at run time (SSE2, AVX, FMA, FMA4), each variant with its own copy of its
//! tables: 0.19 MB of nearly incompressible code and data, for functions that only Lua's `math`
//! library and the plots call. An archive member is linked only to define a symbol nothing else
//! defines, so defining these here keeps those members out. The bodies are the `libm` crate's, a port
//! of musl's libm (errors under 1 ulp). Builds linked against `libm.so` keep glibc's, and so do
//! `exp`, `log`, `pow` and the rest, which are small and which the engine's code calls.

/// Defines each C function `name(args) -> f64` as the `libm` crate's function of the same name.
macro_rules! from_libm_crate {
    ($($name:ident($($arg:ident),+);)+) => {
        $(
            #[unsafe(no_mangle)]
            extern "C" fn $name($($arg: f64),+) -> f64 {
                libm::$name($($arg),+)
            }
        )+
    };
}

from_libm_crate! {
    asin(x);
    acos(x);
    atan2(y, x);
    sin(x);
    cos(x);
    tan(x);
}
