//! Runs after the other suites (scripts/test orders it last): nothing gantry made in the
//! kernel may be left behind — no container or monitor process, cgroup, mount, network
//! namespace or interface.

use std::path::Path;

fn proc_entries() -> Vec<(i32, String, String)> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        out.push((pid, cmdline, cgroup));
    }
    out
}

/// Directories under any cgroup hierarchy named gantry that still have children.
fn leftover_cgroups() -> Vec<String> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            if e.file_name() == "gantry" {
                if let Ok(children) = std::fs::read_dir(&p) {
                    for c in children.flatten().filter(|c| c.path().is_dir()) {
                        out.push(c.path().display().to_string());
                    }
                }
            } else if depth > 0 {
                walk(&p, depth - 1, out);
            }
        }
    }
    let mut out = vec![];
    walk(Path::new("/sys/fs/cgroup"), 4, &mut out);
    out
}

#[test]
fn nothing_gantry_made_is_left_behind() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the leak check needs root to see every process and cgroup: run the suite with sudo (CI runs it as root)"
    );
    let procs: Vec<_> = proc_entries()
        .into_iter()
        .filter(|(_, cmd, cg)| {
            (cmd.contains(" monitor --id ") && cmd.contains("gantry")) || cg.contains("/gantry/")
        })
        .collect();
    let shown: Vec<_> = procs
        .iter()
        .take(4)
        .map(|(pid, cmd, _)| format!("{pid} {cmd}"))
        .collect();
    assert!(
        procs.is_empty(),
        "{} processes left behind, e.g. {shown:?}",
        procs.len()
    );
    let cgroups = leftover_cgroups();
    assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ours: Vec<_> = mounts.lines().filter(|l| l.contains("gantry")).collect();
    assert!(ours.is_empty(), "mounts left behind: {ours:?}");
    let netns: Vec<_> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let netns: Vec<_> = netns
        .into_iter()
        .filter(|n: &String| n.starts_with("gt-") || n.contains("gantry"))
        .collect();
    assert!(
        netns.is_empty(),
        "network namespaces left behind: {netns:?}"
    );
    let links: Vec<_> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gt-") || n.starts_with("gantry"))
        .collect();
    assert!(links.is_empty(), "interfaces left behind: {links:?}");
}
