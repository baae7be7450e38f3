//! Container start-to-exit: `gantry run --rm busybox true` next to `crun run` of the same
//! busybox root filesystem, and the floor every runtime pays (`unshare` + `chroot`).
//!
//! The three are run in turn, N times each (`GANTRY_BENCH_STARTUP_N`, default 200), so a
//! slow minute of the machine hits all three alike. Each sample is the wall time from
//! spawning the command to reaping it.
//!
//! crun refuses this machine's cgroup layout (cgroup v1 plus an empty cgroup2 at
//! `/sys/fs/cgroup/unified`, the "hybrid" layout: "cgroups in hybrid mode not supported").
//! The bench therefore makes itself a private mount namespace once, hides the cgroup2
//! under an empty tmpfs there, so crun sees plain cgroup v1, and spawns crun from inside
//! it; gantry and the floor are spawned from the original namespace (`setns(2)` between
//! samples, outside the timing). Without the hybrid layout nothing is hidden.
//!
//! Run: `cargo build --release && cargo bench --bench startup` (as root).

mod common;

use anyhow::{anyhow, bail, Context, Result};
use common::{ms, BenchDirs, Stats, Table};
use nix::sched::CloneFlags;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    common::run_main("startup", run);
}

/// One way of starting a container, timed.
struct Variant {
    name: &'static str,
    program: OsString,
    args: Vec<OsString>,
    /// The mount namespace to spawn it from.
    ns: Ns,
    /// crun wants a fresh container id as its last argument every run.
    unique_id: bool,
    samples: Vec<Duration>,
}

impl Variant {
    fn command(&self, run: usize) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        if self.unique_id {
            c.arg(format!("bench-{}-{run}", std::process::id()));
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ns {
    Host,
    Crun,
}

fn run() -> Result<()> {
    common::require_root()?;
    let n = common::env_usize("GANTRY_BENCH_STARTUP_N", 200)?;
    let bin = common::gantry_binary()?;
    which("crun").ok_or_else(|| {
        anyhow!("crun is not installed: `apt-get install crun` (scripts/bench does it)")
    })?;
    which("unshare").ok_or_else(|| anyhow!("unshare is missing: `apt-get install util-linux`"))?;
    which("chroot").ok_or_else(|| anyhow!("chroot is missing: `apt-get install coreutils`"))?;

    let dirs = BenchDirs::new("startup")?;
    let _containers = ContainersGuard {
        bin: bin.clone(),
        dirs: &dirs,
    };
    let gantry = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--data-dir")
            .arg(&dirs.data)
            .arg("--state-dir")
            .arg(&dirs.state)
            .args(args);
        c
    };
    // The first run builds the busybox image: untimed.
    let status = gantry(&["run", "--rm", "busybox", "true"])
        .stdin(Stdio::null())
        .status()
        .context("running gantry")?;
    if !status.success() {
        bail!("`gantry run --rm busybox true` failed ({status}); run it by hand to see why");
    }
    let rootfs = dirs.data.join("images/busybox/rootfs");
    if !rootfs.join("bin/busybox").is_file() {
        bail!(
            "{} has no bin/busybox after the first gantry run",
            rootfs.display()
        );
    }

    let bundle = dirs.path().join("bundle");
    let crun_root = dirs.path().join("crun-state");
    write_bundle(&bundle, &rootfs, false)?;
    let bundle_userns = dirs.path().join("bundle-userns");
    write_bundle(&bundle_userns, &rootfs, true)?;
    let namespaces = Namespaces::enter_private()?;
    let _crun_guard = CrunGuard {
        root: crun_root.clone(),
        namespaces: &namespaces,
    };

    let os = |items: &[&dyn AsRef<OsStr>]| {
        items
            .iter()
            .map(|s| s.as_ref().to_os_string())
            .collect::<Vec<_>>()
    };
    let mut variants = vec![
        Variant {
            name: "gantry run --rm busybox true",
            program: bin.clone().into(),
            args: os(&[
                &"--data-dir",
                &dirs.data,
                &"--state-dir",
                &dirs.state,
                &"run",
                &"--rm",
                &"busybox",
                &"true",
            ]),
            ns: Ns::Host,
            unique_id: false,
            samples: vec![],
        },
        Variant {
            name: "crun run (same rootfs, read-only)",
            program: "crun".into(),
            args: os(&[&"--root", &crun_root, &"run", &"--bundle", &bundle]),
            ns: Ns::Crun,
            unique_id: true,
            samples: vec![],
        },
        Variant {
            name: "crun run, with a user namespace too",
            program: "crun".into(),
            args: os(&[&"--root", &crun_root, &"run", &"--bundle", &bundle_userns]),
            ns: Ns::Crun,
            unique_id: true,
            samples: vec![],
        },
        Variant {
            name: "floor: unshare -fpmuin chroot true",
            program: "unshare".into(),
            args: os(&[
                &"--fork",
                &"--pid",
                &"--mount",
                &"--uts",
                &"--ipc",
                &"--net",
                &"chroot",
                &rootfs,
                &"/bin/true",
            ]),
            ns: Ns::Host,
            unique_id: false,
            samples: vec![],
        },
    ];

    let warmup = 5.min(n);
    println!(
        "startup: {n} runs of each (+{warmup} warm-up), alternating; wall time from spawn to exit"
    );
    let started = Instant::now();
    for i in 0..warmup + n {
        common::check_interrupt()?;
        for v in variants.iter_mut() {
            namespaces.enter(v.ns)?;
            let mut cmd = v.command(i);
            let t0 = Instant::now();
            let out = cmd
                .output()
                .with_context(|| format!("spawning {}", v.name))?;
            let took = t0.elapsed();
            if !out.status.success() {
                bail!(
                    "{} failed ({}): {}",
                    v.name,
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            if i >= warmup {
                v.samples.push(took);
            }
        }
        if (i + 1) % 50 == 0 {
            eprintln!(
                "  {} / {} rounds ({:.0} s)",
                i + 1,
                warmup + n,
                started.elapsed().as_secs_f64()
            );
        }
    }
    namespaces.enter(Ns::Host)?;

    println!();
    let mut t = Table::new(&["ms", "median", "p90", "p99", "mean", "min", "max", "n"]);
    for v in &variants {
        let s = Stats::new(&v.samples);
        t.row(vec![
            v.name.to_string(),
            ms(s.median()),
            ms(s.pct(90.0)),
            ms(s.pct(99.0)),
            ms(s.mean()),
            ms(s.min()),
            ms(s.max()),
            s.len().to_string(),
        ]);
    }
    t.print();
    let med = |i: usize| Stats::new(&variants[i].samples).median();
    println!(
        "\ngantry / crun (median): {:.2}x, / crun with a user namespace: {:.2}x; above the floor: gantry {} ms, crun {} ms, crun with a user namespace {} ms",
        med(0) / med(1),
        med(0) / med(2),
        ms(med(0) - med(3)),
        ms(med(1) - med(3)),
        ms(med(2) - med(3))
    );
    println!(
        "Not identical work: gantry builds an overlay on a tmpfs (writable layer), mounts /proc, /sys, /dev, devpts\n\
         and creates a cgroup per run, in a user namespace with its image idmapped; crun bind-mounts the read-only rootfs,\n\
         mounts the same pseudo file systems and masks /proc paths, as its default `crun spec` asks. Both: pid, mount,\n\
         uts, ipc and net namespaces; the second crun line adds a user namespace."
    );
    Ok(())
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file())
}

/// An OCI bundle from `crun spec`, adapted: our rootfs (read-only), `true`, no terminal.
fn write_bundle(bundle: &Path, rootfs: &Path, userns: bool) -> Result<()> {
    std::fs::create_dir_all(bundle).with_context(|| format!("creating {}", bundle.display()))?;
    let out = Command::new("crun")
        .arg("spec")
        .current_dir(bundle)
        .output()
        .context("running `crun spec`")?;
    if !out.status.success() {
        bail!(
            "`crun spec` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .context("parsing crun's config.json")?;
    spec["root"] = serde_json::json!({ "path": rootfs, "readonly": true });
    spec["process"]["args"] = serde_json::json!(["true"]);
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["linux"]["namespaces"] = serde_json::json!([
        { "type": "pid" }, { "type": "mount" }, { "type": "uts" }, { "type": "ipc" }, { "type": "network" }
    ]);
    if userns {
        // As gantry: a user namespace mapping 0-65535 to a high host range.
        spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("an array")
            .push(serde_json::json!({ "type": "user" }));
        let map =
            serde_json::json!([{ "containerID": 0, "hostID": 3_000_000_000u32, "size": 65536 }]);
        spec["linux"]["uidMappings"] = map.clone();
        spec["linux"]["gidMappings"] = map;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&spec)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The host's mount namespace and a private one where crun can run.
struct Namespaces {
    host: OwnedFd,
    crun: OwnedFd,
}

impl Namespaces {
    /// Creates the private namespace (and stays in it until [`Namespaces::enter`]).
    fn enter_private() -> Result<Self> {
        let open = |p: &str| -> Result<OwnedFd> {
            Ok(std::fs::File::open(p)
                .with_context(|| format!("opening {p}"))?
                .into())
        };
        let host = open("/proc/self/ns/mnt")?;
        nix::sched::unshare(CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
        use nix::mount::{mount, MsFlags};
        // Our mounts must not propagate back to the host.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("making / private in the bench's mount namespace")?;
        if hybrid_cgroups() {
            mount(
                Some("none"),
                "/sys/fs/cgroup/unified",
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .context("mounting an empty tmpfs over /sys/fs/cgroup/unified")?;
        }
        let crun = open("/proc/self/ns/mnt")?;
        Ok(Namespaces { host, crun })
    }

    fn enter(&self, ns: Ns) -> Result<()> {
        let fd = match ns {
            Ns::Host => &self.host,
            Ns::Crun => &self.crun,
        };
        nix::sched::setns(fd, CloneFlags::CLONE_NEWNS).context("setns(CLONE_NEWNS)")
    }
}

/// cgroup v1 with a cgroup2 at /sys/fs/cgroup/unified.
fn hybrid_cgroups() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup/unified")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
        && nix::sys::statfs::statfs("/sys/fs/cgroup")
            .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
            .unwrap_or(false)
}

/// Removes gantry containers left in the bench's state dir.
struct ContainersGuard<'a> {
    bin: PathBuf,
    dirs: &'a BenchDirs,
}

impl Drop for ContainersGuard<'_> {
    fn drop(&mut self) {
        if self.dirs.state.exists() {
            if let Err(e) = common::remove_all_containers(&self.bin, self.dirs) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Deletes crun containers left in the bench's crun state dir (after a failed run).
struct CrunGuard<'a> {
    root: PathBuf,
    namespaces: &'a Namespaces,
}

impl Drop for CrunGuard<'_> {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        if self.namespaces.enter(Ns::Crun).is_err() {
            return;
        }
        for e in entries.flatten() {
            if e.path().is_dir() {
                let _ = Command::new("crun")
                    .arg("--root")
                    .arg(&self.root)
                    .args(["delete", "-f"])
                    .arg(e.file_name())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = self.namespaces.enter(Ns::Host);
    }
}
