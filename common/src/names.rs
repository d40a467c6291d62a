//! Metric and label name syntax (Prometheus'), shared by the agent's config
//! validation and the collector's sample validation.

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        for ok in ["cpu_usage_percent", "a", "_x", "ns:metric_1"] {
            assert!(is_metric_name(ok), "{ok}");
        }
        for bad in ["", "1abc", "cpu-usage", "cpu usage", "ü"] {
            assert!(!is_metric_name(bad), "{bad}");
        }
    }

    #[test]
    fn label_names() {
        for ok in ["host", "_a", "mount_point2"] {
            assert!(is_label_name(ok), "{ok}");
        }
        for bad in ["", "2x", "a:b", "a-b"] {
            assert!(!is_label_name(bad), "{bad}");
        }
    }
}
