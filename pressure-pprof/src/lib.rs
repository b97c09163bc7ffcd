//! Decodes pprof profiles (gzip or raw profile.proto) and reports top consumers exactly like go tool pprof -top.
#![deny(missing_docs)]
