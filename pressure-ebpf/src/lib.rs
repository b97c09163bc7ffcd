//! Catches kernel OOM kills with a CO-RE eBPF program (aya) or the kernel log, and classifies them (global, memcg) with the victim's pod and container.
#![deny(missing_docs)]
