//! Integration tests of `pressure-cgroup` against this machine's real cgroup v1 memory hierarchy.
//!
//! They need root; without it they are skipped with a message, except under `CI=true` where they fail.

mod real_v1;
mod watch;
