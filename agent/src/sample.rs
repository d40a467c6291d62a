//! The agent's domain types: what a sampler produces before the batch is
//! labelled and converted for the wire.

/// One reading of one series, without the host and static labels, which
/// the batch adds.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name, e.g. `cpu_usage_percent`.
    pub metric: &'static str,
    /// Labels specific to the reading, e.g. `("cpu", "0")`.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// A sample without labels.
    pub fn new(metric: &'static str, value: f64) -> Sample {
        Sample {
            metric,
            labels: Vec::new(),
            value,
        }
    }

    /// A sample with one label.
    pub fn labelled(
        metric: &'static str,
        name: &'static str,
        label: impl Into<String>,
        value: f64,
    ) -> Sample {
        Sample {
            metric,
            labels: vec![(name, label.into())],
            value,
        }
    }

    /// Adds a label.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Sample {
        self.labels.push((name, value.into()));
        self
    }
}

/// A sample of an application metric (statsd, synthetic checks): names
/// and labels are only known at run time, and the value may be a histogram.
#[derive(Clone, Debug)]
pub struct AppSample {
    /// Metric name (already a valid Prometheus name).
    pub metric: String,
    /// Labels besides `host` and the static ones.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: AppValue,
}

/// The value of an [`AppSample`].
#[derive(Clone, Debug)]
pub enum AppValue {
    /// A plain number.
    Gauge(f64),
    /// The observations of one interval.
    Histogram(nightjar_model::histogram::Histogram),
}

/// The value of the first sample named `metric` carrying all `labels`
/// (test helper).
#[cfg(test)]
pub fn find(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.metric == metric
                && labels
                    .iter()
                    .all(|(n, v)| s.labels.iter().any(|(ln, lv)| ln == n && lv == v))
        })
        .map(|s| s.value)
}

/// A source of application samples that runs beside the sampler (its own
/// threads or tasks) and hands over what it has on every tick.
pub trait AppSource: Send + Sync {
    /// The samples for the tick that just happened; `interval` is the
    /// sampling interval.
    fn collect(&self, interval: std::time::Duration) -> Vec<AppSample>;
}
