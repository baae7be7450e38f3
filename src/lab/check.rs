//! A step's checks: how gantry decides that the student did what the step asked.
//!
//! Two kinds, written as `[[check]]` tables in a step's front matter:
//!
//! - `run = "<command>"` with `in = "<container>"` (or `in = "host"`, the session's lab
//!   host): passes when the command exits 0, like a health check.
//! - `assert = "<kind>"` with its fields: a fact about kernel state that gantry reads
//!   itself, from `/proc/<pid>/ns/*` (namespaces(7)) and the container's cgroup
//!   (cgroups(7)), so a student cannot fake it from inside the container.
//!
//! Every check carries the `message` the student sees when it fails, optional `hints`, and
//! `fail = true` to flip it (passes when the condition does *not* hold).
//!
//! This module only parses and validates; evaluating a check against a running session
//! belongs to the session layer.

use crate::runtime::spec::{ContainerName, CpuLimit, MemoryLimit, PidsLimit, SpecError};
use std::collections::BTreeSet;
use std::fmt;

/// What is wrong with one `[[check]]` table. The caller adds the file and check number.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CheckError {
    #[error("a check needs either `run = \"<command>\"` or `assert = \"<kind>\"`")]
    NoKind,
    #[error("a check has either `run` or `assert`, not both")]
    BothKinds,
    #[error("unknown assert kind {0:?} (expected one of: {kinds})", kinds = AssertKind::NAMES.join(", "))]
    UnknownKind(String),
    #[error("missing field `{field}`{}", for_kind(.kind))]
    MissingField {
        field: &'static str,
        kind: Option<&'static str>,
    },
    #[error("unknown field `{field}`{} (expected: {expected})", for_kind(.kind))]
    UnknownField {
        field: String,
        kind: Option<&'static str>,
        expected: String,
    },
    #[error("field `{field}` must be {expected}, not {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field `{field}`: {source}")]
    BadValue {
        field: &'static str,
        source: SpecError,
    },
    #[error("field `namespace`: unknown namespace {0:?} (expected one of: mnt, uts, ipc, pid, net, user, cgroup)")]
    UnknownNamespace(String),
    #[error("field `containers` must name exactly two different containers")]
    NotTwoContainers,
    #[error("field `{field}` must not be empty")]
    Empty { field: &'static str },
}

fn for_kind(kind: &Option<&'static str>) -> String {
    kind.map(|k| format!(" for assert \"{k}\""))
        .unwrap_or_default()
}

/// One check of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What the student is told when the check fails.
    pub message: String,
    /// Shown one at a time when the student asks.
    pub hints: Vec<String>,
    /// `fail = true`: the check passes when the condition does not hold.
    pub negate: bool,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// Run `command` with `sh -c` in `target`; exit status 0 passes.
    Run { command: String, target: Target },
    /// A fact gantry reads from the kernel.
    Assert(Assertion),
}

/// Where a `run` check runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The session's lab host, where the student's terminal is.
    Host,
    Container(ContainerName),
}

/// A namespace type, as named in `/proc/<pid>/ns/` (namespaces(7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    Mnt,
    Uts,
    Ipc,
    Pid,
    Net,
    User,
    Cgroup,
}

impl Namespace {
    pub const ALL: [Namespace; 7] = [
        Namespace::Mnt,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Pid,
        Namespace::Net,
        Namespace::User,
        Namespace::Cgroup,
    ];

    pub fn parse(s: &str) -> Result<Self, CheckError> {
        Namespace::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| CheckError::UnknownNamespace(s.to_string()))
    }

    /// The file name under `/proc/<pid>/ns/`.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Mnt => "mnt",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Pid => "pid",
            Namespace::Net => "net",
            Namespace::User => "user",
            Namespace::Cgroup => "cgroup",
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The closed set of host-side facts a check can assert.
#[derive(Debug, Clone, PartialEq)]
pub enum Assertion {
    /// The container's namespace of this type differs from the lab host's (inode numbers).
    OwnNamespace {
        container: ContainerName,
        namespace: Namespace,
    },
    /// Both containers are in the same namespace of this type.
    SharedNamespace {
        containers: [ContainerName; 2],
        namespace: Namespace,
    },
    /// The container's cgroup has exactly this memory limit.
    MemoryLimit {
        container: ContainerName,
        limit: MemoryLimit,
    },
    /// The container's cgroup allows at most this many tasks.
    PidsLimit {
        container: ContainerName,
        max: PidsLimit,
    },
    /// The container's CFS quota is this many CPUs per period.
    CpuQuota {
        container: ContainerName,
        cpus: CpuLimit,
    },
    /// The kernel's OOM killer killed a process in the container's cgroup.
    OomKilled {
        container: ContainerName,
    },
    /// The container's freezer state is frozen (`state = true`) or thawed.
    Frozen {
        container: ContainerName,
        state: bool,
    },
    Running {
        container: ContainerName,
    },
    /// The container has exited, with this code if one is given.
    Exited {
        container: ContainerName,
        code: Option<i32>,
    },
}

/// The names of [`Assertion`]s as written in `assert = "..."`, and their fields.
struct AssertKind;

impl AssertKind {
    const NAMES: [&'static str; 9] = [
        "own_namespace",
        "shared_namespace",
        "memory_limit",
        "pids_limit",
        "cpu_quota",
        "oom_killed",
        "frozen",
        "running",
        "exited",
    ];

    /// Fields an assert kind takes besides the common ones, required first.
    fn fields(kind: &str) -> &'static [&'static str] {
        match kind {
            "own_namespace" => &["container", "namespace"],
            "shared_namespace" => &["containers", "namespace"],
            "memory_limit" => &["container", "bytes"],
            "pids_limit" => &["container", "max"],
            "cpu_quota" => &["container", "cpus"],
            "frozen" => &["container", "state"],
            "exited" => &["container", "code"],
            _ => &["container"],
        }
    }
}

/// Fields every check may have.
const COMMON: [&str; 4] = ["message", "hints", "fail", "assert"];

impl Check {
    /// Parses one `[[check]]` table.
    pub fn parse(table: &toml::Table) -> Result<Check, CheckError> {
        let message = string(table, "message")?.ok_or(CheckError::MissingField {
            field: "message",
            kind: None,
        })?;
        if message.trim().is_empty() {
            return Err(CheckError::Empty { field: "message" });
        }
        let hints = strings(table, "hints")?.unwrap_or_default();
        let negate = match table.get("fail") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(v) => return Err(wrong_type("fail", "true or false", v)),
        };
        let kind = match (table.contains_key("run"), table.contains_key("assert")) {
            (false, false) => return Err(CheckError::NoKind),
            (true, true) => return Err(CheckError::BothKinds),
            (true, false) => parse_run(table)?,
            (false, true) => CheckKind::Assert(parse_assert(table)?),
        };
        Ok(Check {
            message,
            hints,
            negate,
            kind,
        })
    }

    /// Every container this check names (a typo in one would make it fail forever).
    pub fn containers(&self) -> Vec<&ContainerName> {
        match &self.kind {
            CheckKind::Run {
                target: Target::Container(c),
                ..
            } => vec![c],
            CheckKind::Run { .. } => vec![],
            CheckKind::Assert(a) => match a {
                Assertion::SharedNamespace { containers, .. } => containers.iter().collect(),
                Assertion::OwnNamespace { container, .. }
                | Assertion::MemoryLimit { container, .. }
                | Assertion::PidsLimit { container, .. }
                | Assertion::CpuQuota { container, .. }
                | Assertion::OomKilled { container }
                | Assertion::Frozen { container, .. }
                | Assertion::Running { container }
                | Assertion::Exited { container, .. } => vec![container],
            },
        }
    }
}

fn parse_run(table: &toml::Table) -> Result<CheckKind, CheckError> {
    let allowed = ["message", "hints", "fail", "run", "in"];
    reject_unknown(table, &allowed, None)?;
    let command = string(table, "run")?.unwrap_or_default();
    if command.trim().is_empty() {
        return Err(CheckError::Empty { field: "run" });
    }
    let target = match string(table, "in")?.as_deref() {
        None => {
            return Err(CheckError::MissingField {
                field: "in",
                kind: None,
            })
        }
        Some("host") => Target::Host,
        Some(name) => Target::Container(ContainerName::parse(name).map_err(|source| {
            CheckError::BadValue {
                field: "in",
                source,
            }
        })?),
    };
    Ok(CheckKind::Run { command, target })
}

fn parse_assert(table: &toml::Table) -> Result<Assertion, CheckError> {
    let name = string(table, "assert")?.unwrap_or_default();
    let Some(kind) = AssertKind::NAMES.into_iter().find(|k| *k == name) else {
        return Err(CheckError::UnknownKind(name));
    };
    let fields = AssertKind::fields(kind);
    let allowed: Vec<&str> = COMMON.iter().chain(fields).copied().collect();
    reject_unknown(table, &allowed, Some(kind))?;
    let required = |field: &'static str| CheckError::MissingField {
        field,
        kind: Some(kind),
    };
    let container = || -> Result<ContainerName, CheckError> {
        let s = string(table, "container")?.ok_or_else(|| required("container"))?;
        name_of("container", &s)
    };
    let namespace = || -> Result<Namespace, CheckError> {
        Namespace::parse(&string(table, "namespace")?.ok_or_else(|| required("namespace"))?)
    };
    Ok(match kind {
        "own_namespace" => Assertion::OwnNamespace {
            container: container()?,
            namespace: namespace()?,
        },
        "shared_namespace" => {
            let names = strings(table, "containers")?.ok_or_else(|| required("containers"))?;
            let [a, b] =
                <[String; 2]>::try_from(names).map_err(|_| CheckError::NotTwoContainers)?;
            if a == b {
                return Err(CheckError::NotTwoContainers);
            }
            Assertion::SharedNamespace {
                containers: [name_of("containers", &a)?, name_of("containers", &b)?],
                namespace: namespace()?,
            }
        }
        "memory_limit" => {
            let container = container()?;
            let text = scalar(table, "bytes", "a limit such as \"64m\"")?
                .ok_or_else(|| required("bytes"))?;
            Assertion::MemoryLimit {
                container,
                limit: MemoryLimit::parse(&text).map_err(|source| CheckError::BadValue {
                    field: "bytes",
                    source,
                })?,
            }
        }
        "pids_limit" => {
            let container = container()?;
            let text = scalar(table, "max", "a whole number")?.ok_or_else(|| required("max"))?;
            Assertion::PidsLimit {
                container,
                max: PidsLimit::parse(&text).map_err(|source| CheckError::BadValue {
                    field: "max",
                    source,
                })?,
            }
        }
        "cpu_quota" => {
            let container = container()?;
            let text = scalar(table, "cpus", "a number of CPUs such as \"0.5\"")?
                .ok_or_else(|| required("cpus"))?;
            Assertion::CpuQuota {
                container,
                cpus: CpuLimit::parse(&text).map_err(|source| CheckError::BadValue {
                    field: "cpus",
                    source,
                })?,
            }
        }
        "oom_killed" => Assertion::OomKilled {
            container: container()?,
        },
        "frozen" => {
            let container = container()?;
            let state = match table.get("state") {
                None => return Err(required("state")),
                Some(toml::Value::Boolean(b)) => *b,
                Some(v) => return Err(wrong_type("state", "true or false", v)),
            };
            Assertion::Frozen { container, state }
        }
        "running" => Assertion::Running {
            container: container()?,
        },
        "exited" => {
            let container = container()?;
            let code = match table.get("code") {
                None => None,
                Some(toml::Value::Integer(n)) if (0..=255).contains(n) => Some(*n as i32),
                Some(v) => return Err(wrong_type("code", "an exit code from 0 to 255", v)),
            };
            Assertion::Exited { container, code }
        }
        _ => unreachable!("every name in AssertKind::NAMES has a parser"),
    })
}

fn reject_unknown(
    table: &toml::Table,
    allowed: &[&str],
    kind: Option<&'static str>,
) -> Result<(), CheckError> {
    // Sorted, so that the first unknown field reported does not depend on hashing.
    let keys: BTreeSet<&String> = table.keys().collect();
    match keys.into_iter().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(field) => Err(CheckError::UnknownField {
            field: field.clone(),
            kind,
            expected: allowed.join(", "),
        }),
    }
}

fn name_of(field: &'static str, s: &str) -> Result<ContainerName, CheckError> {
    ContainerName::parse(s).map_err(|source| CheckError::BadValue { field, source })
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

fn wrong_type(field: &'static str, expected: &'static str, v: &toml::Value) -> CheckError {
    CheckError::WrongType {
        field,
        expected,
        found: type_name(v),
    }
}

fn string(table: &toml::Table, field: &'static str) -> Result<Option<String>, CheckError> {
    match table.get(field) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(wrong_type(field, "a string", v)),
    }
}

/// A string or a number, as text for a `parse` function (`max = 20` and `max = "20"`).
fn scalar(
    table: &toml::Table,
    field: &'static str,
    expected: &'static str,
) -> Result<Option<String>, CheckError> {
    match table.get(field) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(toml::Value::Integer(n)) => Ok(Some(n.to_string())),
        Some(toml::Value::Float(f)) => Ok(Some(f.to_string())),
        Some(v) => Err(wrong_type(field, expected, v)),
    }
}

/// A list of strings (`hints`, `containers`).
pub(crate) fn strings(
    table: &toml::Table,
    field: &'static str,
) -> Result<Option<Vec<String>>, CheckError> {
    let expected = "a list of strings";
    match table.get(field) {
        None => Ok(None),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s.clone()),
                v => Err(wrong_type(field, expected, v)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(wrong_type(field, expected, v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Check, CheckError> {
        Check::parse(&src.parse::<toml::Table>().unwrap())
    }

    fn name(s: &str) -> ContainerName {
        ContainerName::parse(s).unwrap()
    }

    #[test]
    fn a_run_check_names_where_it_runs() {
        let c = parse("run = \"hostname | grep web\"\nin = \"web\"\nmessage = \"m\"").unwrap();
        assert_eq!(
            c.kind,
            CheckKind::Run {
                command: "hostname | grep web".into(),
                target: Target::Container(name("web")),
            }
        );
        let c = parse("run = \"true\"\nin = \"host\"\nmessage = \"m\"\nfail = true").unwrap();
        assert!(c.negate);
        assert!(c.containers().is_empty(), "the host is not a container");
    }

    #[test]
    fn every_assert_kind_parses() {
        let cases = [
            "assert = \"own_namespace\"\ncontainer = \"web\"\nnamespace = \"pid\"",
            "assert = \"shared_namespace\"\ncontainers = [\"a\", \"b\"]\nnamespace = \"net\"",
            "assert = \"memory_limit\"\ncontainer = \"web\"\nbytes = \"64m\"",
            "assert = \"pids_limit\"\ncontainer = \"web\"\nmax = 20",
            "assert = \"cpu_quota\"\ncontainer = \"web\"\ncpus = \"0.5\"",
            "assert = \"oom_killed\"\ncontainer = \"web\"",
            "assert = \"frozen\"\ncontainer = \"web\"\nstate = true",
            "assert = \"running\"\ncontainer = \"web\"",
            "assert = \"exited\"\ncontainer = \"web\"\ncode = 0",
            "assert = \"exited\"\ncontainer = \"web\"",
        ];
        for src in cases {
            parse(&format!("{src}\nmessage = \"m\"")).unwrap_or_else(|e| panic!("{src}: {e}"));
        }
        let c = parse(
            "assert = \"memory_limit\"\ncontainer = \"web\"\nbytes = \"64m\"\nmessage = \"m\"",
        )
        .unwrap();
        assert_eq!(
            c.kind,
            CheckKind::Assert(Assertion::MemoryLimit {
                container: name("web"),
                limit: MemoryLimit::parse("64m").unwrap()
            })
        );
    }

    #[test]
    fn an_unknown_assert_kind_lists_the_known_ones() {
        let e =
            parse("assert = \"memory_limt\"\ncontainer = \"web\"\nmessage = \"m\"").unwrap_err();
        assert_eq!(e, CheckError::UnknownKind("memory_limt".into()));
        let text = e.to_string();
        assert!(text.contains("\"memory_limt\""), "{text}");
        assert!(text.contains("own_namespace, shared_namespace"), "{text}");
    }

    #[test]
    fn a_check_without_a_message_is_refused() {
        let e = parse("assert = \"running\"\ncontainer = \"web\"").unwrap_err();
        assert_eq!(e.to_string(), "missing field `message`");
    }

    #[test]
    fn a_field_of_another_kind_is_refused_by_name() {
        let e =
            parse("assert = \"running\"\ncontainer = \"web\"\nbytes = \"64m\"\nmessage = \"m\"")
                .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("unknown field `bytes` for assert \"running\""),
            "{text}"
        );
    }

    #[test]
    fn a_missing_field_names_the_field_and_kind() {
        let e =
            parse("assert = \"own_namespace\"\ncontainer = \"web\"\nmessage = \"m\"").unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing field `namespace` for assert \"own_namespace\""
        );
    }

    #[test]
    fn bad_limits_keep_the_runtimes_own_message() {
        let e = parse(
            "assert = \"memory_limit\"\ncontainer = \"web\"\nbytes = \"lots\"\nmessage = \"m\"",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("invalid memory limit \"lots\""),
            "{e}"
        );
        let e = parse("assert = \"pids_limit\"\ncontainer = \"web\"\nmax = 0\nmessage = \"m\"")
            .unwrap_err();
        assert!(e.to_string().contains("--pids-limit"), "{e}");
    }

    #[test]
    fn namespaces_and_container_names_are_validated() {
        let e = parse("assert = \"own_namespace\"\ncontainer = \"web\"\nnamespace = \"time\"\nmessage = \"m\"")
            .unwrap_err();
        assert_eq!(e, CheckError::UnknownNamespace("time".into()));
        let e = parse("assert = \"running\"\ncontainer = \"-web\"\nmessage = \"m\"").unwrap_err();
        assert!(e.to_string().contains("invalid container name"), "{e}");
        let e = parse("assert = \"shared_namespace\"\ncontainers = [\"a\"]\nnamespace = \"net\"\nmessage = \"m\"")
            .unwrap_err();
        assert_eq!(e, CheckError::NotTwoContainers);
    }

    #[test]
    fn run_and_assert_are_exclusive_and_one_is_needed() {
        assert_eq!(parse("message = \"m\"").unwrap_err(), CheckError::NoKind);
        assert_eq!(
            parse("run = \"true\"\nin = \"host\"\nassert = \"running\"\nmessage = \"m\"")
                .unwrap_err(),
            CheckError::BothKinds
        );
        assert_eq!(
            parse("run = \"true\"\nmessage = \"m\"")
                .unwrap_err()
                .to_string(),
            "missing field `in`"
        );
    }
}
