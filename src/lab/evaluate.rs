//! Running a lab step's checks against a session: a command in a container (exit 0
//! passes), or a fact gantry reads from the kernel itself — namespace inodes under
//! `/proc/<pid>/ns`, the container's cgroup files, its recorded exit — so nothing the
//! student types inside a container can fake it.

use super::{Assertion, Check, CheckKind, Namespace, Target};
use crate::observe::namespaces::inode;
use crate::runtime::cgroups::{CgroupStats, ContainerCgroup};
use crate::runtime::spec::ContainerName;
use crate::runtime::state::{self, ContainerDir, ContainerState};
use crate::session::Sessions;
use crate::store::SessionRow;
use serde::Serialize;
use std::time::Duration;

/// How long a `run` check may take.
pub const RUN_CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// A check's verdict, as the page shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outcome {
    pub passed: bool,
    pub message: String,
}

/// What a check found out about a container.
struct Seen {
    cd: ContainerDir,
    state: ContainerState,
    alive: bool,
    pid: Option<i32>,
}

impl Seen {
    fn cgroup(&self) -> Option<ContainerCgroup> {
        self.state
            .cgroup
            .as_ref()
            .filter(|_| self.alive)
            .map(ContainerCgroup::open)
    }

    fn stats(&self) -> Option<CgroupStats> {
        self.cgroup().map(|c| c.stats())
    }
}

fn seen(sessions: &Sessions, row: &SessionRow, name: &ContainerName) -> Option<Seen> {
    let cd = sessions.find_nested(row, name.as_str()).ok()?;
    let mut st = cd.state().ok()?;
    state::reap_if_orphaned(&cd, &mut st);
    let alive = state::container_alive(&st);
    Some(Seen {
        pid: st.pid.filter(|_| alive),
        cd,
        state: st,
        alive,
    })
}

/// Runs one check; `fail = true` (negate) flips the verdict.
pub async fn evaluate(sessions: &Sessions, row: &SessionRow, check: &Check) -> Outcome {
    let holds = match &check.kind {
        CheckKind::Run { command, target } => run_check(sessions, row, command, target).await,
        CheckKind::Assert(a) => assertion_holds(sessions, row, a),
    };
    let passed = holds != check.negate;
    Outcome {
        passed,
        message: if passed {
            "passed".into()
        } else {
            check.message.clone()
        },
    }
}

async fn run_check(sessions: &Sessions, row: &SessionRow, command: &str, target: &Target) -> bool {
    let cd = match target {
        Target::Host => sessions.container(row),
        Target::Container(name) => match sessions.find_nested(row, name.as_str()) {
            Ok(cd) => cd,
            Err(_) => return false,
        },
    };
    let cmd = ["sh".to_string(), "-c".to_string(), command.to_string()];
    match sessions.exec(&cd, &cmd, RUN_CHECK_TIMEOUT).await {
        Ok(r) => r.exit_code == 0 && !r.timed_out,
        Err(_) => false,
    }
}

fn assertion_holds(sessions: &Sessions, row: &SessionRow, a: &Assertion) -> bool {
    let ns_inode =
        |seen: &Seen, ns: &Namespace| seen.pid.and_then(|p| inode(&p.to_string(), ns.as_str()));
    match a {
        Assertion::OwnNamespace {
            container,
            namespace,
        } => {
            let Some(seen) = seen(sessions, row, container) else {
                return false;
            };
            let host_pid = sessions.container(row).state().ok().and_then(|s| s.pid);
            let mine = ns_inode(&seen, namespace);
            let host = host_pid.and_then(|p| inode(&p.to_string(), namespace.as_str()));
            mine.is_some() && host.is_some() && mine != host
        }
        Assertion::SharedNamespace {
            containers,
            namespace,
        } => {
            let (Some(a), Some(b)) = (
                seen(sessions, row, &containers[0]),
                seen(sessions, row, &containers[1]),
            ) else {
                return false;
            };
            let (x, y) = (ns_inode(&a, namespace), ns_inode(&b, namespace));
            x.is_some() && x == y
        }
        Assertion::MemoryLimit { container, limit } => seen(sessions, row, container)
            .and_then(|s| s.stats())
            .and_then(|st| st.memory.limit_bytes)
            // The kernel keeps whole pages.
            .is_some_and(|b| b / 4096 == limit.bytes() / 4096),
        Assertion::PidsLimit { container, max } => seen(sessions, row, container)
            .and_then(|s| s.stats())
            .and_then(|st| st.pids.limit)
            .is_some_and(|l| l == max.get() as u64),
        Assertion::CpuQuota { container, cpus } => seen(sessions, row, container)
            .and_then(|s| s.stats())
            .and_then(|st| st.cpu.quota_cpus)
            .is_some_and(|q| {
                let want =
                    cpus.quota_us() as f64 / crate::runtime::spec::CpuLimit::PERIOD_US as f64;
                (q - want).abs() < 0.005
            }),
        Assertion::OomKilled { container } => seen(sessions, row, container).is_some_and(|s| {
            s.state.oom_killed || s.stats().is_some_and(|st| st.memory.oom_kills > 0)
        }),
        Assertion::Frozen { container, state } => seen(sessions, row, container)
            .and_then(|s| s.cgroup())
            .is_some_and(|c| c.frozen() == *state),
        Assertion::Running { container } => seen(sessions, row, container).is_some_and(|s| s.alive),
        Assertion::Exited { container, code } => seen(sessions, row, container).is_some_and(|s| {
            !s.alive && s.cd.dir.is_dir() && code.is_none_or(|c| s.state.exit_code == Some(c))
        }),
    }
}

/// Runs a step's checks in order; the first that fails is the verdict. A step that
/// passes is recorded as progress.
pub async fn check_step(
    sessions: &Sessions,
    row: &SessionRow,
    step: u32,
    checks: &[Check],
) -> Outcome {
    for c in checks {
        let o = evaluate(sessions, row, c).await;
        if !o.passed {
            return o;
        }
    }
    if let Err(e) = sessions.store.step_passed(&row.id, step, state::now()) {
        tracing::warn!(error = %e, "recording progress");
    }
    sessions.touch(&row.id);
    Outcome {
        passed: true,
        message: if checks.is_empty() {
            "nothing to check in this step: go on".into()
        } else {
            "well done: every check of this step passes".into()
        },
    }
}
