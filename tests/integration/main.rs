//! Integration tests: the real binary, real kernel features (as root), a real SQLite file,
//! a real WebSocket client and a real browser. `tests/leaks.rs` runs after these and
//! checks that nothing was left behind.

mod abuse;
mod api;
mod browser;
mod escape;
mod helpers;
mod labs;
mod network;
mod restart;
mod runtime;
mod storage;
mod student;
mod terminal;
