//! Actions dispatched on memory-pressure events: Lua scripts, exec, webhooks, heap-profile capture, and local or S3 storage.
#![deny(missing_docs)]
