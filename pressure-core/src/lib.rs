//! Pure core of pressure: configuration model and validation, the warn/critical threshold state machine with hysteresis, cooldown and OOM prediction, and the events it emits. No I/O.
#![deny(missing_docs)]
