//! `gantry exec`, `inspect`, `stats`, `pause` and `unpause` on the host: each works on
//! the container's folder, cgroup and namespaces directly (inside a lab host the same
//! commands go to the daemon, see [`super::remote`]).

use super::{ExecArgs, NameArgs};
use crate::config::Paths;
use crate::runtime::cgroups::ContainerCgroup;
use crate::runtime::state::{self, ContainerDir};
use anyhow::{bail, Context};

fn running(paths: &Paths, key: &str) -> anyhow::Result<(ContainerDir, i32, ContainerCgroup)> {
    let cd = state::find(paths, key)?;
    let st = cd.state()?;
    if !state::container_alive(&st) {
        bail!("container {key} is not running: see gantry ps -a");
    }
    let pid = st.pid.context("a running container has a pid")?;
    let cg = ContainerCgroup::open(
        st.cgroup
            .as_ref()
            .context("a running container has a cgroup")?,
    );
    Ok((cd, pid, cg))
}

pub fn exec(paths: &Paths, a: ExecArgs) -> anyhow::Result<i32> {
    super::require_root()?;
    if a.tty {
        bail!("exec -t is for lab hosts; on the host, run a command (gantry exec {} ps) or start an interactive container with gantry run -it", a.container);
    }
    let (cd, _, _) = running(paths, &a.container)?;
    Ok(crate::runtime::exec::exec_in(&cd, &a.command, false)?)
}

pub fn inspect(paths: &Paths, a: NameArgs) -> anyhow::Result<i32> {
    let cd = state::find(paths, &a.container)?;
    let spec = cd.spec()?;
    let st = cd.state()?;
    let live = state::container_alive(&st);
    let cg = st
        .cgroup
        .as_ref()
        .filter(|_| live)
        .map(ContainerCgroup::open);
    let v = serde_json::json!({
        "id": cd.id,
        "spec": spec,
        "state": st,
        "namespaces": st.pid.filter(|_| live).map(crate::observe::namespaces::compare),
        "cgroup": cg.as_ref().map(|c| c.stats()),
        "paused": cg.as_ref().is_some_and(|c| c.frozen()),
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}

pub fn stats(paths: &Paths, a: NameArgs) -> anyhow::Result<i32> {
    let (_, _, cg) = running(paths, &a.container)?;
    println!("{}", serde_json::to_string_pretty(&cg.stats())?);
    Ok(0)
}

pub fn pause(paths: &Paths, a: NameArgs, paused: bool) -> anyhow::Result<i32> {
    super::require_root()?;
    let (_, _, cg) = running(paths, &a.container)?;
    cg.set_frozen(paused)?;
    println!("{}", a.container);
    Ok(0)
}
