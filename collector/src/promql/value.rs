//! The values a PromQL expression evaluates to over the steps of a query,
//! column by step: a scalar is one number a step, an instant vector is
//! series with an optional value a step, a range vector (only ever a
//! function's argument, or an instant query's answer) is series with
//! their raw points. Pure.

use std::collections::BTreeMap;

/// A label set, `__name__` included, sorted by name.
pub type LabelSet = BTreeMap<String, String>;

/// The metric-name label.
pub const NAME: &str = "__name__";

/// One series of an instant vector over the steps.
#[derive(Clone, Debug, PartialEq)]
pub struct StepSeries {
    /// Its labels.
    pub labels: LabelSet,
    /// One value a step; None where the series has none.
    pub values: Vec<Option<f64>>,
}

/// One series of a range vector: raw points, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSeries {
    /// Its labels.
    pub labels: LabelSet,
    /// (timestamp ms, value).
    pub points: Vec<(i64, f64)>,
}

/// What an expression evaluates to.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A number a step.
    Scalar(Vec<f64>),
    /// Series with a value a step.
    Vector(Vec<StepSeries>),
    /// Series with their raw points at the (single) evaluation time.
    Matrix(Vec<RawSeries>),
    /// A string literal (only as a function argument).
    String(String),
}

/// Labels without `__name__`.
pub fn without_name(labels: &LabelSet) -> LabelSet {
    let mut out = labels.clone();
    out.remove(NAME);
    out
}

/// Formats a sample value as Prometheus does (Go's `FormatFloat(v, 'f',
/// -1, 64)`): the shortest text that reads back the same, no exponent.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_format_as_prometheus_does() {
        assert_eq!(format_value(1.5), "1.5");
        assert_eq!(format_value(100.0), "100");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(-0.0), "-0");
    }
}
