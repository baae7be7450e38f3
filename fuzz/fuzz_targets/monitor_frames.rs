//! Any bytes on a monitor socket, in any chunking, decode to frames or to an error; a
//! decoded frame encodes back to the same bytes.
#![no_main]
use gantry::runtime::monitor_proto::{Decoder, Frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().copied().unwrap_or(1).max(1) as usize;
    let mut d = Decoder::default();
    for chunk in data.chunks(split) {
        d.push(chunk);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    let mut again = Decoder::default();
                    again.push(&f.encode());
                    let back: Option<Frame> = again.next_frame().ok().flatten();
                    assert_eq!(back.as_ref(), Some(&f));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
