//! Any bytes a browser sends on the terminal WebSocket parse to a frame or to a close
//! reason, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(reason) = gantry::web::terminal::parse_client_frame(data) {
        assert!(!reason.is_empty());
    }
});
