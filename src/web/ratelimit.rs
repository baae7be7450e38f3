//! A token bucket per client address, for session creation: a class clicks "Open a
//! shell" a few times each; a script hammering the endpoint gets 429 before it can fill
//! the class.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    /// Tokens per minute, which is also the burst; 0 turns the limit off.
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `ip` at time `now`; `Err` says how long until the next one.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let cap = self.per_minute as f64;
        let per_sec = cap / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 10_000 {
            // Forget clients whose bucket has refilled: they lose nothing.
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * per_sec < cap
            });
        }
        let (tokens, at) = buckets.entry(ip).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_sec).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval() {
        let rl = RateLimiter::new(6); // one every 10 s, burst of 6
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..6 {
            assert!(rl.take(ip, t0).is_ok());
        }
        let wait = rl.take(ip, t0).unwrap_err();
        assert!(
            wait <= Duration::from_secs(10) && wait > Duration::from_secs(9),
            "{wait:?}"
        );
        assert!(
            rl.take("10.0.0.2".parse().unwrap(), t0).is_ok(),
            "other clients are not affected"
        );
        assert!(rl.take(ip, t0 + Duration::from_secs(10)).is_ok());
        assert!(RateLimiter::new(0).take(ip, t0).is_ok(), "0 turns it off");
    }
}
