//! Integration tests of pressure-actions: real HTTP servers, a real S3-compatible server (rclone), a real
//! Go program for heap capture, real programs for exec.

mod util;

mod dispatch;
mod exec_webhook;
mod heap;
mod lua_api;
mod sandbox;
mod storage;
