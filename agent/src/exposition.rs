//! The host metrics on the agent's `/metrics` page, node_exporter style:
//! the readings of the last sampling pass under the names of
//! docs/metrics.md, each family with `# HELP` and `# TYPE`, so that an
//! existing Prometheus can scrape a Nightjar agent while a team migrates.
//!
//! The page carries no `host` label: the scraping Prometheus identifies
//! the target by its own `instance` and `job` labels.

use std::sync::Mutex;

use crate::sample::Sample;

/// The host samples of the last sampling pass, shared by the sampling
/// loop (writer) and the status port (reader).
#[derive(Default)]
pub struct LatestHostSamples(Mutex<Vec<Sample>>);

impl LatestHostSamples {
    /// Replaces the readings with those of a new pass.
    pub fn set(&self, samples: &[Sample]) {
        *self.0.lock().expect("poisoned") = samples.to_vec();
    }

    /// The readings of the last pass.
    pub fn get(&self) -> Vec<Sample> {
        self.0.lock().expect("poisoned").clone()
    }
}

pub use nightjar_common::metric_help::{HELP, help};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_with_help_is_documented_once() {
        let docs = include_str!("../../docs/metrics.md");
        let mut seen = std::collections::BTreeSet::new();
        for (name, help) in HELP {
            assert!(seen.insert(*name), "{name} twice");
            assert!(
                docs.contains(&format!("`{name}`")),
                "{name} is not in docs/metrics.md"
            );
            assert!(
                help.ends_with('.') && !help.contains('\n'),
                "{name}: {help:?}"
            );
        }
    }

    #[test]
    fn every_host_metric_sampled_here_has_help() {
        let mut sampler = crate::sampler::HostSampler::new(Default::default()).unwrap();
        sampler.sample();
        std::thread::sleep(std::time::Duration::from_millis(300));
        for s in sampler.sample() {
            assert!(help(s.metric).is_some(), "{} has no HELP", s.metric);
        }
        let counters = crate::telemetry::AgentCounters::default();
        for s in counters.samples(1, 2, 0.5) {
            assert!(help(s.metric).is_some(), "{} has no HELP", s.metric);
        }
    }
}
