//! # gantry
//!
//! A web dashboard for teaching container internals, with its own container runtime.
//!
//! ## Layout
//!
//! Dependencies point down only:
//!
//! - [`web`]: HTTP, pages, the JSON API and the terminal WebSocket. Knows sessions, never
//!   syscalls.
//! - [`lab`]: the lab catalog (`labs/`): steps in Markdown, and the checks that tell a
//!   student a step is done.
//! - [`session`]: a session's lifecycle: its container, idle/lifetime reaping, admission,
//!   recovery after a server restart.
//! - [`observe`]: read-only views of kernel state for the pictures (namespaces of a pid,
//!   cgroup usage).
//! - [`image`]: the image store and the default `busybox` image.
//! - [`runtime`]: the container runtime itself: a [`runtime::spec::ContainerSpec`] is
//!   planned into pure data, then applied by a single-threaded process (the CLI, or the
//!   per-container monitor) with `clone(2)`, `mount(2)`, `pivot_root(2)` and cgroups.
//! - [`store`]: SQLite, one file under the data dir.
//! - [`config`]: where things live on disk.
//! - [`cli`]: the `gantry` command line, which mirrors `docker`.

pub mod cli;
pub mod config;
pub mod image;
pub mod lab;
pub mod observe;
pub mod runtime;
pub mod session;
pub mod store;
pub mod web;
