//! What a container should be: a pure description, validated on the way in.
//!
//! Every user-supplied value is a newtype with `parse` ("parse, don't validate"), so the
//! rest of the runtime never sees a limit it cannot apply.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A bad value given for a container setting. The message says what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("invalid memory limit {0:?}: use a number with an optional unit b, k, m or g (e.g. 64m), at least 4m")]
    Memory(String),
    #[error(
        "invalid --cpus value {0:?}: use a positive number of CPUs such as 0.5 or 2 (at most 1024)"
    )]
    Cpus(String),
    #[error("invalid --pids-limit {0:?}: use a whole number from 1 to 4194304")]
    Pids(String),
    #[error("invalid container name {0:?}: use 1 to 63 characters from a-z A-Z 0-9 _ . -, starting with a letter or digit")]
    Name(String),
    #[error("invalid hostname {0:?}: use 1 to 63 characters from a-z A-Z 0-9 -, not starting or ending with -")]
    Hostname(String),
    #[error(
        "invalid environment variable {0:?}: use KEY=VALUE with a non-empty KEY without '=' or NUL"
    )]
    Env(String),
    #[error("invalid network {0:?}: use none, host, container:<name>, or the name of a network made with `gantry network create` (1 to 12 of a-z 0-9 - _)")]
    Network(String),
    #[error("invalid mount {0:?}: use -v NAME:/path[:ro] (a named volume), -v /dir/in/the/lab/host:/path[:ro], or --tmpfs /path[:size]")]
    Volume(String),
    #[error("invalid port mapping {0:?}: use -p HOSTPORT:CONTAINERPORT, e.g. -p 8080:80 (TCP ports 1-65535)")]
    Port(String),
    #[error("invalid image name {0:?}: use lowercase letters, digits and . _ - (e.g. busybox)")]
    Image(String),
    #[error("invalid working directory {0:?}: use an absolute path")]
    Workdir(String),
    #[error("invalid disk size {0:?}: use a number with an optional unit k, m or g (e.g. 512m), at least 1m")]
    Disk(String),
}

/// Parses `64m`, `1g`, `512k`, `64MB`, `1048576` into bytes.
fn parse_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let body = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, mult) = match body.as_bytes().last()? {
        b'k' => (&body[..body.len() - 1], 1u64 << 10),
        b'm' => (&body[..body.len() - 1], 1u64 << 20),
        b'g' => (&body[..body.len() - 1], 1u64 << 30),
        _ => (body, 1u64),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// A memory limit in bytes (`--memory 64m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryLimit(u64);

impl MemoryLimit {
    /// The kernel needs a few MiB for a process to even start; below 4 MiB the container
    /// would be killed before it runs anything, which only confuses a student.
    pub const MIN: u64 = 4 << 20;

    pub fn parse(s: &str) -> Result<Self, SpecError> {
        match parse_size(s) {
            Some(b) if (Self::MIN..=(1u64 << 50)).contains(&b) => Ok(MemoryLimit(b)),
            _ => Err(SpecError::Memory(s.to_string())),
        }
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

/// A size for a writable layer (`--disk 512m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskLimit(u64);

impl DiskLimit {
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        match parse_size(s) {
            Some(b) if (1u64 << 20..=(1u64 << 50)).contains(&b) => Ok(DiskLimit(b)),
            _ => Err(SpecError::Disk(s.to_string())),
        }
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

/// A CPU quota in CPUs (`--cpus 0.5`), stored as millicpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuLimit(u32);

impl CpuLimit {
    /// The CFS period gantry uses, as Docker does: 100 ms.
    pub const PERIOD_US: u64 = 100_000;

    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::Cpus(s.to_string());
        let v: f64 = s.trim().parse().map_err(|_| bad())?;
        if !v.is_finite() || v <= 0.0 || v > 1024.0 {
            return Err(bad());
        }
        let milli = (v * 1000.0).round() as u32;
        // The kernel refuses quotas under 1 ms per period.
        if milli < 10 {
            return Err(bad());
        }
        Ok(CpuLimit(milli))
    }

    pub fn millicpus(self) -> u32 {
        self.0
    }

    pub fn cpus(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// `cpu.cfs_quota_us` for [`Self::PERIOD_US`].
    pub fn quota_us(self) -> i64 {
        (Self::PERIOD_US as i64 * self.0 as i64) / 1000
    }
}

/// A limit on the number of tasks (`--pids-limit 64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsLimit(u32);

impl PidsLimit {
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        match s.trim().parse::<u32>() {
            Ok(n) if (1..=4_194_304).contains(&n) => Ok(PidsLimit(n)),
            _ => Err(SpecError::Pids(s.to_string())),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A container name (`--name web`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContainerName(String);

impl ContainerName {
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
        if ok {
            Ok(ContainerName(s.to_string()))
        } else {
            Err(SpecError::Name(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A hostname (RFC 1123 label).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && !s.starts_with('-')
            && !s.ends_with('-')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if ok {
            Ok(Hostname(s.to_string()))
        } else {
            Err(SpecError::Hostname(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An image name as gantry stores it: a single path component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageName(String);

impl ImageName {
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        // Docker-style ":latest" is accepted and dropped: gantry keeps one version per name.
        let name = s.strip_suffix(":latest").unwrap_or(s);
        let ok = !name.is_empty()
            && name.len() <= 128
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
            });
        if ok {
            Ok(ImageName(name.to_string()))
        } else {
            Err(SpecError::Image(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// One `KEY=VALUE` environment entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
}

impl EnvVar {
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        match s.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => Ok(EnvVar {
                key: k.to_string(),
                value: v.to_string(),
            }),
            _ => Err(SpecError::Env(s.to_string())),
        }
    }
}

/// How the container's network is set up. The networking issue adds bridge, host,
/// container:<name>, macvlan and overlay; `none` (a private namespace with only
/// loopback) is the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    #[default]
    None,
    /// `container:<name>`: join that container's network namespace (its id once
    /// resolved), as Kubernetes pods and docker's `--network container:` do.
    Container(String),
    /// `host`: inside a lab host, the lab host's own network namespace (resolved to
    /// `Container(<lab host id>)`); never the real host's.
    Host,
    /// A user network by name, before the session gives the container its address.
    Named(String),
    /// A place on a user bridge network (resolved from `Named`).
    Bridge(crate::runtime::network::BridgeNet),
}

impl NetworkMode {
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        match s {
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            _ => match s.strip_prefix("container:") {
                Some(c) if !c.is_empty() => Ok(NetworkMode::Container(c.to_string())),
                Some(_) => Err(SpecError::Network(s.to_string())),
                None => NetworkName::parse(s).map(|n| NetworkMode::Named(n.0)),
            },
        }
    }

    /// The container whose network namespace this one joins.
    pub fn shared_with(&self) -> Option<&str> {
        match self {
            NetworkMode::Container(c) => Some(c),
            _ => None,
        }
    }
}

/// A user network's name: like a container name, at most 12 characters (its bridge is
/// `gt-<name>`, and interface names have at most 15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkName(pub String);

impl NetworkName {
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let ok = !s.is_empty()
            && s.len() <= 12
            && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok && !["none", "host"].contains(&s) {
            Ok(NetworkName(s.to_string()))
        } else {
            Err(SpecError::Network(s.to_string()))
        }
    }
}

/// Resource limits; `None` means unlimited (within the parent cgroup).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory: Option<MemoryLimit>,
    pub cpus: Option<CpuLimit>,
    pub pids: Option<PidsLimit>,
    /// Size of the writable layer's tmpfs.
    pub disk: Option<DiskLimit>,
}

/// Open files a container's processes may have (RLIMIT_NOFILE, soft and hard), unless the
/// host's own hard limit is lower: a container can never exhaust the host's descriptors.
pub const NOFILE: u64 = 4096;

/// Everything needed to start a container. Serialised into the container's folder, so a
/// monitor (a separate process) can read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub id: String,
    pub name: Option<ContainerName>,
    pub image: ImageName,
    /// The image's read-only root filesystem (overlay lower dir).
    pub image_rootfs: std::path::PathBuf,
    pub command: Vec<String>,
    pub env: Vec<EnvVar>,
    pub hostname: Hostname,
    pub workdir: String,
    pub tty: bool,
    /// Keep stdin open (`-i`).
    pub interactive: bool,
    pub limits: Limits,
    pub network: NetworkMode,
    /// Remove the container's state when it exits (`--rm`).
    pub auto_remove: bool,
    /// The session this container belongs to, if any (sessions group containers).
    pub session: Option<String>,
    /// The host ids the container's user namespace maps its ids 0..65536 to.
    pub idmap: crate::runtime::idmap::IdRange,
    /// Host files and folders bound into the container.
    #[serde(default)]
    pub binds: Vec<Bind>,
    /// Set when the container is started from a lab host and nests inside it.
    #[serde(default)]
    pub nest: Option<Nest>,
    /// Allow creating namespaces inside the container (a lab's `nested-namespaces`).
    #[serde(default)]
    pub nested_namespaces: bool,
    /// Folders of the lab host mounted in (named volumes and `-v /dir:/path`); only for
    /// nested containers, whose mount namespace is copied from the lab host's.
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// `--tmpfs /path[:size]`.
    #[serde(default)]
    pub tmpfs: Vec<TmpfsMount>,
    /// /proc and /sys without Docker's masked and read-only paths: a lab host's, so that
    /// its containers may mount their own /proc and /sys (the kernel lets a user namespace
    /// mount them only where a fully visible instance is already mounted; see
    /// `mount_too_revealing` in fs/namespace.c).
    #[serde(default)]
    pub unmasked_proc: bool,
    /// `-p HOSTPORT:CPORT`: ports of the lab host forwarded to the container.
    #[serde(default)]
    pub publish: Vec<PortMap>,
}

/// One `-p HOSTPORT:CPORT` (TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMap {
    pub host: u16,
    pub container: u16,
}

impl PortMap {
    /// Parses `8080:80` (or `8080:80/tcp`).
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::Port(s.to_string());
        let s2 = s.strip_suffix("/tcp").unwrap_or(s);
        let (h, c) = s2.split_once(':').ok_or_else(bad)?;
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
        Ok(PortMap {
            host: port(h)?,
            container: port(c)?,
        })
    }
}

/// A folder of the lab host mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// Absolute path in the lab host (a named volume's is
    /// `/var/lib/gantry/volumes/<name>/_data`).
    pub source: String,
    /// Absolute path in the container.
    pub target: String,
    pub readonly: bool,
    /// The volume's name, for a named volume.
    pub volume: Option<String>,
}

impl VolumeMount {
    /// Parses `-v NAME:/path[:ro]` or `-v /dir:/path[:ro]`.
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::Volume(s.to_string());
        let parts: Vec<&str> = s.split(':').collect();
        let (source, target, readonly) = match parts.as_slice() {
            [src, dst] => (*src, *dst, false),
            [src, dst, "ro"] => (*src, *dst, true),
            [src, dst, "rw"] => (*src, *dst, false),
            _ => return Err(bad()),
        };
        let clean = |p: &str| {
            p.starts_with('/') && !p.split('/').any(|c| c == ".." || c == ".") && !p.contains('\0')
        };
        if !clean(target) || target == "/" {
            return Err(bad());
        }
        if source.starts_with('/') {
            if !clean(source) {
                return Err(bad());
            }
            return Ok(VolumeMount {
                source: source.to_string(),
                target: target.to_string(),
                readonly,
                volume: None,
            });
        }
        let name = NetworkName::parse(source).map_err(|_| bad())?.0;
        Ok(VolumeMount {
            source: format!("/var/lib/gantry/volumes/{name}/_data"),
            target: target.to_string(),
            readonly,
            volume: Some(name),
        })
    }
}

/// A tmpfs mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsMount {
    pub target: String,
    pub size: u64,
}

impl TmpfsMount {
    /// Parses `--tmpfs /path[:size]` (size like 64m; default 64m).
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let (target, size) = match s.split_once(':') {
            Some((t, z)) => (t, MemoryLimit::parse(z)?.bytes()),
            None => (s, 64 << 20),
        };
        if !target.starts_with('/') || target == "/" || target.split('/').any(|c| c == "..") {
            return Err(SpecError::Volume(s.to_string()));
        }
        Ok(TmpfsMount {
            target: target.to_string(),
            size,
        })
    }
}

/// A host file or folder bound into the container (`-v /host:/path[:ro]`). The runtime
/// opens `source` on the host side and hands the mount to the container, so the
/// container never needs to reach the host path itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: std::path::PathBuf,
    /// Absolute path inside the container.
    pub target: String,
    pub readonly: bool,
    /// `source` is a file (or socket), not a folder.
    pub file: bool,
}

/// A container started from a session's lab host: its pid namespace is a child of the
/// lab host's (the lab host sees its processes, as a host sees its containers'), and its
/// cgroup sits below the lab host's (the session's budget covers it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nest {
    /// The lab host's container id.
    pub host: String,
    /// The lab host's first process (pid on the real host).
    pub host_pid: i32,
    /// The lab host's cgroup.
    pub cgroup: crate::runtime::cgroups::CgroupPlacement,
}

/// A fresh container id: 12 lowercase hex digits, like Docker's short ids.
pub fn new_container_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

impl ContainerSpec {
    /// The environment the command sees: defaults first, then the user's `-e`.
    pub fn effective_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("HOSTNAME".into(), self.hostname.as_str().into()),
            ("HOME".into(), "/root".into()),
        ];
        if self.tty {
            env.push(("TERM".into(), "xterm-256color".into()));
        }
        for e in &self.env {
            env.retain(|(k, _)| k != &e.key);
            env.push((e.key.clone(), e.value.clone()));
        }
        env
    }
}

/// Checks a working directory given with `-w`.
pub fn parse_workdir(s: &str) -> Result<String, SpecError> {
    if s.starts_with('/') && !s.contains('\0') {
        Ok(s.to_string())
    } else {
        Err(SpecError::Workdir(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits_accept_docker_units() {
        assert_eq!(MemoryLimit::parse("64m").unwrap().bytes(), 64 << 20);
        assert_eq!(MemoryLimit::parse("1g").unwrap().bytes(), 1 << 30);
        assert_eq!(MemoryLimit::parse("8192k").unwrap().bytes(), 8 << 20);
        assert_eq!(MemoryLimit::parse("64MB").unwrap().bytes(), 64 << 20);
        assert_eq!(MemoryLimit::parse("4194304").unwrap().bytes(), 4 << 20);
    }

    #[test]
    fn memory_limits_reject_nonsense_with_a_hint() {
        for bad in ["", "m", "-1m", "1.5g", "64x", "1m", "99999999999999g"] {
            let err = MemoryLimit::parse(bad).unwrap_err();
            assert!(err.to_string().contains("e.g. 64m"), "{bad}: {err}");
        }
    }

    #[test]
    fn cpus_become_a_cfs_quota() {
        assert_eq!(CpuLimit::parse("0.5").unwrap().quota_us(), 50_000);
        assert_eq!(CpuLimit::parse("2").unwrap().quota_us(), 200_000);
        for bad in ["0", "-1", "abc", "NaN", "inf", "0.001", "5000"] {
            assert!(CpuLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pids_limit_is_a_positive_integer() {
        assert_eq!(PidsLimit::parse("64").unwrap().get(), 64);
        for bad in ["0", "-3", "1.5", "many", "99999999"] {
            assert!(PidsLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_hostnames_and_images_are_checked() {
        assert!(ContainerName::parse("web-1.a_b").is_ok());
        assert!(ContainerName::parse("../etc").is_err());
        assert!(ContainerName::parse("-x").is_err());
        assert!(Hostname::parse("lab-host").is_ok());
        assert!(Hostname::parse("a.b").is_err());
        assert_eq!(
            ImageName::parse("busybox:latest").unwrap().as_str(),
            "busybox"
        );
        assert!(ImageName::parse("../../etc").is_err());
        assert!(ImageName::parse("Busybox").is_err());
    }

    #[test]
    fn env_needs_a_key() {
        assert_eq!(EnvVar::parse("A=b=c").unwrap().value, "b=c");
        assert!(EnvVar::parse("=x").is_err());
        assert!(EnvVar::parse("novalue").is_err());
    }

    #[test]
    fn volume_flags_parse_as_docker_writes_them() {
        let v = VolumeMount::parse("data:/srv").unwrap();
        assert_eq!(v.source, "/var/lib/gantry/volumes/data/_data");
        assert_eq!(v.volume.as_deref(), Some("data"));
        assert!(!v.readonly);
        let b = VolumeMount::parse("/root/site:/usr/share/html:ro").unwrap();
        assert_eq!(
            (b.source.as_str(), b.readonly, b.volume),
            ("/root/site", true, None)
        );
        for bad in [
            "data",
            "data:relative",
            "/a/../b:/x",
            "x:/",
            "Data!:/x",
            "a:/b:rx",
        ] {
            assert!(VolumeMount::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(TmpfsMount::parse("/cache:16m").unwrap().size, 16 << 20);
        assert!(TmpfsMount::parse("cache").is_err());
        assert_eq!(
            PortMap::parse("8080:80/tcp").unwrap(),
            PortMap {
                host: 8080,
                container: 80
            }
        );
        for bad in ["80", "0:80", "8080:", "a:b", "70000:80", "8080:80/udp"] {
            assert!(PortMap::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_env_overrides_defaults() {
        let spec = ContainerSpec {
            id: "x".into(),
            name: None,
            image: ImageName::parse("busybox").unwrap(),
            image_rootfs: "/tmp".into(),
            command: vec!["true".into()],
            env: vec![EnvVar::parse("HOME=/tmp").unwrap()],
            hostname: Hostname::parse("h").unwrap(),
            workdir: "/".into(),
            tty: false,
            interactive: false,
            limits: Limits::default(),
            network: NetworkMode::None,
            auto_remove: false,
            session: None,
            idmap: crate::runtime::idmap::IdRange::of_slot(0),
            binds: vec![],
            nest: None,
            nested_namespaces: false,
            volumes: vec![],
            tmpfs: vec![],
            unmasked_proc: false,
            publish: vec![],
        };
        let env = spec.effective_env();
        assert_eq!(env.iter().filter(|(k, _)| k == "HOME").count(), 1);
        assert!(env.contains(&("HOME".into(), "/tmp".into())));
    }
}
