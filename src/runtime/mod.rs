//! The container runtime: a [`spec::ContainerSpec`] in, a running isolated process out.
//!
//! - [`spec`]: what a container should be (validated newtypes);
//! - [`plan`]: the spec as pure data: clone flags and mount operations;
//! - [`rootfs`]: applies a mount plan (mount(2), mknod(2), pivot_root(2));
//! - [`cgroups`]: the container's cgroup: limits and usage;
//! - [`security`]: capabilities, no_new_privs, masked and read-only paths;
//! - [`idmap`]: user namespaces: uid/gid ranges, their registry, idmapped mounts;
//! - [`seccomp`]: the system call allowlist;
//! - [`netlink`] and [`network`]: rtnetlink requests, and bridge networks built with them;
//! - [`sync`]: the parent/child handshake over a socketpair;
//! - [`launch`]: clone, join, build, exec;
//! - [`exec`]: one more process in a running container (setns);
//! - [`state`]: the container's folder in the state dir;
//! - [`monitor`] and [`monitor_proto`]: the per-container monitor process and its frames;
//! - [`client`]: talking to a monitor from the CLI.

pub mod cgroups;
pub mod client;
pub mod exec;
pub mod idmap;
pub mod launch;
pub mod monitor;
pub mod monitor_proto;
pub mod netlink;
pub mod network;
pub mod plan;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod state;
pub mod sync;
