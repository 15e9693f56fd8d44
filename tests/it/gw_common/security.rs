//! Captures `sealgate::security` events of the in-process gateway, so a
//! test can check that a failure was reported, and about which object.

use std::sync::{Arc, Mutex, OnceLock};

/// Security events seen by this test binary: (event, key).
pub type Seen = Arc<Mutex<Vec<(String, String)>>>;

pub fn events() -> Seen {
    capture().0.clone()
}

/// The same events as [`events`], each with the access key it names ("" if
/// none): (event, key or client address, access key). The integration tests
/// share one process, so a test that asserts an event was *not* raised for
/// an address (every local client is 127.0.0.1) narrows to its own access key.
pub fn events_by_access_key() -> Arc<Mutex<Vec<(String, String, String)>>> {
    capture().1.clone()
}

type ByKey = Arc<Mutex<Vec<(String, String, String)>>>;

fn capture() -> &'static (Seen, ByKey) {
    static SEEN: OnceLock<(Seen, ByKey)> = OnceLock::new();
    SEEN.get_or_init(|| {
        use tracing_subscriber::prelude::*;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let by_key = Arc::new(Mutex::new(Vec::new()));
        let layer = Capture(seen.clone(), by_key.clone());
        let _ = tracing_subscriber::registry().with(layer).try_init();
        (seen, by_key)
    })
}

struct Capture(Seen, ByKey);

struct Fields(Option<String>, Option<String>, Option<String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        let v = format!("{v:?}").trim_matches('"').to_owned();
        match f.name() {
            "event" => self.0 = Some(v),
            "key" => self.1 = Some(v),
            // Events about a client rather than an object name its address.
            "client_ip" if self.1.is_none() => self.1 = Some(v),
            "access_key" => self.2 = Some(v),
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
        let mut f = Fields(None, None, None);
        e.record(&mut f);
        if let (Some(ev), Some(k)) = (f.0, f.1) {
            let access_key = f.2.unwrap_or_default();
            self.1
                .lock()
                .unwrap()
                .push((ev.clone(), k.clone(), access_key));
            self.0.lock().unwrap().push((ev, k));
        }
    }
}
