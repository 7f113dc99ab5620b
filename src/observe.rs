//! Invalidation-latency samples one by one, for an OpenTelemetry histogram
//! (`lib/otel.js`): `metrics()` has only the summary of the latest window.

use napi_derive::napi;

use crate::{NativeCache, Tier};

#[napi(object)]
pub struct LatencySamples {
    /// Samples taken since the instance started (pass it back as `seen`).
    pub count: f64,
    /// The samples taken after the first `seen`, in seconds, oldest first; at
    /// most the latest 64 (`latency.rs`' window): older ones are gone.
    pub seconds: Vec<f64>,
}

#[napi]
impl NativeCache {
    /// Invalidation-latency samples taken after the first `seen` (see [`LatencySamples`]).
    #[napi]
    pub fn invalidation_samples(&self, seen: f64) -> LatencySamples {
        let (count, samples) = match &self.tier {
            Tier::Memory(_) => (0, Vec::new()),
            Tier::Redis { tier, .. } => tier.shared().probe.samples_since(seen.max(0.0) as u64),
        };
        LatencySamples {
            count: count as f64,
            seconds: samples.iter().map(|d| d.as_secs_f64()).collect(),
        }
    }
}
