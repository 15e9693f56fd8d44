//! Counting failed client authentications per source address, so that a
//! burst (credential guessing, a stolen key id, a misconfigured client
//! hammering the gateway) becomes one security event rather than noise.
//!
//! Each source gets a fixed window: the first failure opens it, and when the
//! count inside it reaches the threshold the caller is told once; the next
//! failure after the window closes opens a new one. The map is bounded:
//! when full, closed windows are swept and, failing that, the oldest is
//! dropped, so a flood of distinct addresses cannot grow memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most sources tracked at once.
const MAX_SOURCES: usize = 4096;

#[derive(Debug)]
struct Window {
    opened: Instant,
    count: u32,
}

/// Failed authentications per source within a window.
#[derive(Debug)]
pub struct FailureWatch {
    threshold: u32,
    window: Duration,
    sources: Mutex<HashMap<IpAddr, Window>>,
}

impl FailureWatch {
    /// Reports a source once it fails `threshold` times within `window`;
    /// a threshold of 0 never reports.
    pub fn new(threshold: u32, window: Duration) -> FailureWatch {
        FailureWatch {
            threshold,
            window,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one failure from `source` at `now`; returns the count when it
    /// has just reached the threshold.
    pub fn record(&self, source: IpAddr, now: Instant) -> Option<u32> {
        if self.threshold == 0 {
            return None;
        }
        let mut m = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if !m.contains_key(&source) && m.len() >= MAX_SOURCES {
            m.retain(|_, w| now.duration_since(w.opened) < self.window);
            if m.len() >= MAX_SOURCES
                && let Some(oldest) = m.iter().min_by_key(|(_, w)| w.opened).map(|(k, _)| *k)
            {
                m.remove(&oldest);
            }
        }
        let w = m.entry(source).or_insert(Window {
            opened: now,
            count: 0,
        });
        if now.duration_since(w.opened) >= self.window {
            *w = Window {
                opened: now,
                count: 0,
            };
        }
        w.count += 1;
        (w.count == self.threshold).then_some(w.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_once_per_window_per_source() {
        let w = FailureWatch::new(3, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t = Instant::now();
        assert_eq!(w.record(a, t), None);
        assert_eq!(w.record(a, t), None);
        assert_eq!(w.record(b, t), None);
        assert_eq!(w.record(a, t), Some(3));
        assert_eq!(w.record(a, t), None, "reported once per window");
        // A new window starts after the old one closes.
        let later = t + Duration::from_secs(61);
        assert_eq!(w.record(a, later), None);
        assert_eq!(w.record(a, later), None);
        assert_eq!(w.record(a, later), Some(3));
        assert_eq!(
            FailureWatch::new(0, Duration::from_secs(1)).record(a, t),
            None
        );
    }

    #[test]
    fn memory_is_bounded() {
        let w = FailureWatch::new(2, Duration::from_secs(60));
        let t = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 100) {
            w.record(IpAddr::from(i.to_be_bytes()), t);
        }
        assert!(w.sources.lock().unwrap().len() <= MAX_SOURCES);
    }
}
