//! Captures `sealgate::security` events of the in-process gateway, so a
//! test can check that a failure was reported, and about which object.

use std::sync::{Arc, Mutex, OnceLock};

/// Security events seen by this test binary: (event, key).
pub type Seen = Arc<Mutex<Vec<(String, String)>>>;

pub fn events() -> Seen {
    static SEEN: OnceLock<Seen> = OnceLock::new();
    SEEN.get_or_init(|| {
        use tracing_subscriber::prelude::*;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let layer = Capture(seen.clone());
        let _ = tracing_subscriber::registry().with(layer).try_init();
        seen
    })
    .clone()
}

struct Capture(Seen);

struct Fields(Option<String>, Option<String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        let v = format!("{v:?}").trim_matches('"').to_owned();
        match f.name() {
            "event" => self.0 = Some(v),
            "key" => self.1 = Some(v),
            // Events about a client rather than an object name its address.
            "client_ip" if self.1.is_none() => self.1 = Some(v),
            _ => {}
        }
    }
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        self.record_debug(f, &v);
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if e.metadata().target() != "sealgate::security" {
            return;
        }
        let mut f = Fields(None, None);
        e.record(&mut f);
        if let (Some(ev), Some(k)) = (f.0, f.1) {
            self.0.lock().unwrap().push((ev, k));
        }
    }
}
