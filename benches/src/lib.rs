//! Criterion benchmarks for the pressure workspace; see `benches/`.
