//! Validation of incoming samples. A bad sample is rejected alone, with a
//! reason that names the field; the rest of its batch is stored.

pub use nightjar_common::names::{is_label_name, is_metric_name};

/// Why a sample was rejected. [`Rejection::REASONS`] names each kind for
/// the `reason` label of the rejected-samples self-metric.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// The metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("metric name {0:?} is not of the form [a-zA-Z_:][a-zA-Z0-9_:]*")]
    BadMetricName(String),
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("metric {metric}: label name {name:?} is not of the form [a-zA-Z_][a-zA-Z0-9_]*")]
    BadLabelName {
        /// The sample's metric.
        metric: String,
        /// The bad name.
        name: String,
    },
    /// A label name occurs twice.
    #[error("metric {metric}: label {name} occurs more than once")]
    DuplicateLabel {
        /// The sample's metric.
        metric: String,
        /// The repeated name.
        name: String,
    },
    /// The `host` label disagrees with the batch's host.
    #[error("metric {metric}: label host={label:?} differs from the batch host {batch:?}")]
    ForeignHost {
        /// The sample's metric.
        metric: String,
        /// The label value.
        label: String,
        /// The batch's host.
        batch: String,
    },
    /// The value is NaN or infinite.
    #[error("metric {metric}: value {value} is not finite")]
    NonFiniteValue {
        /// The sample's metric.
        metric: String,
        /// The value.
        value: f64,
    },
    /// The sample has no value.
    #[error("metric {0}: sample has no value (neither gauge nor histogram)")]
    UnsupportedValue(String),
    /// The histogram value cannot be decoded or is out of bounds.
    #[error("metric {metric}: {reason}")]
    BadHistogram {
        /// The sample's metric.
        metric: String,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The series already holds a point at or after the sample's timestamp
    /// (the first value stored for a timestamp wins).
    #[error(
        "sample is not newer than its series' newest point (out of order or repeated timestamp)"
    )]
    OutOfOrder,
    /// The timestamp is too far in the future or the past (`[limits]
    /// max_sample_future`, `max_sample_age`).
    #[error("metric {metric}: timestamp {timestamp_ms} is {what}")]
    TimestampOutOfRange {
        /// The sample's metric.
        metric: String,
        /// The timestamp (ms).
        timestamp_ms: i64,
        /// How far off, and the limit.
        what: String,
    },
    /// A configured limit (`[limits]`) refuses the sample.
    #[error("metric {metric}: {what}")]
    OverLimit {
        /// The sample's metric.
        metric: String,
        /// Which limit, with its value.
        what: String,
        /// 0 metric name length, 1 label count, 2 label length, 3 series count.
        reason: u8,
    },
}

impl Rejection {
    /// Every reason, as used for the `reason` label.
    pub const REASONS: [&'static str; 13] = [
        "bad_metric_name",
        "bad_label_name",
        "duplicate_label",
        "foreign_host",
        "non_finite_value",
        "unsupported_value",
        "metric_name_too_long",
        "too_many_labels",
        "label_too_long",
        "series_limit",
        "out_of_order",
        "timestamp_out_of_range",
        "bad_histogram",
    ];

    /// This rejection's index into [`Rejection::REASONS`].
    pub fn reason_index(&self) -> usize {
        match self {
            Rejection::BadMetricName(_) => 0,
            Rejection::BadLabelName { .. } => 1,
            Rejection::DuplicateLabel { .. } => 2,
            Rejection::ForeignHost { .. } => 3,
            Rejection::NonFiniteValue { .. } => 4,
            Rejection::UnsupportedValue(_) => 5,
            Rejection::OverLimit { reason, .. } => 6 + usize::from(*reason).min(3),
            Rejection::OutOfOrder => 10,
            Rejection::TimestampOutOfRange { .. } => 11,
            Rejection::BadHistogram { .. } => 12,
        }
    }
}
