//! Any text given as a limit, a name, an image, an environment entry, a duration, a mount
//! or a network is
//! accepted or refused with a message, never a panic; accepted limits stay in range.
#![no_main]
use gantry::runtime::spec::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(m) = MemoryLimit::parse(s) {
        assert!(m.bytes() >= MemoryLimit::MIN);
    }
    if let Ok(c) = CpuLimit::parse(s) {
        assert!(c.quota_us() > 0);
    }
    if let Ok(p) = PidsLimit::parse(s) {
        assert!(p.get() >= 1);
    }
    let _ = DiskLimit::parse(s);
    if let Ok(n) = ContainerName::parse(s) {
        assert!(!n.as_str().contains('/'));
    }
    if let Ok(i) = ImageName::parse(s) {
        assert!(!i.as_str().contains('/') && !i.as_str().starts_with('.'));
    }
    let _ = Hostname::parse(s);
    let _ = EnvVar::parse(s);
    let _ = gantry::web::parse_duration(s);
    // Mounts and networks: a path that escapes with `..` is never accepted.
    if let Ok(v) = VolumeMount::parse(s) {
        assert!(v.target.starts_with('/') && !v.target.split('/').any(|c| c == ".."));
        assert!(v.source.starts_with('/') && !v.source.split('/').any(|c| c == ".."));
    }
    if let Ok(t) = TmpfsMount::parse(s) {
        assert!(t.target.starts_with('/') && !t.target.split('/').any(|c| c == ".."));
    }
    if let Ok(NetworkMode::Named(n)) = NetworkMode::parse(s) {
        assert!(n.len() <= 12 && !n.contains('/'));
    }
});
