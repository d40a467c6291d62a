//! Series selection: a metric name and label matchers (`=`, `!=`, `=~`, `!~`).

use crate::model::SeriesKey;

/// How a matcher compares a label value.
#[derive(Clone, Debug)]
pub enum MatchOp {
    /// Equal to the string.
    Equal(String),
    /// Not equal to the string.
    NotEqual(String),
    /// Matches the regex over the whole value.
    Regex(regex::Regex),
    /// Does not match the regex over the whole value.
    NotRegex(regex::Regex),
}

/// One label matcher. A missing label has the value "" (as in Prometheus),
/// so `name!="x"` selects series without the label.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Comparison.
    pub op: MatchOp,
}

/// An invalid matcher.
#[derive(Debug, thiserror::Error)]
#[error("label matcher {name}: invalid regex {pattern:?}: {reason}")]
pub struct MatcherError {
    /// The label name of the matcher.
    pub name: String,
    /// The regex text.
    pub pattern: String,
    /// Why it does not compile.
    pub reason: String,
}

impl Matcher {
    /// Builds a regex matcher (anchored at both ends); `negate` for `!~`.
    pub fn regex(name: &str, pattern: &str, negate: bool) -> Result<Matcher, MatcherError> {
        let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| MatcherError {
            name: name.to_owned(),
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        let op = if negate {
            MatchOp::NotRegex(re)
        } else {
            MatchOp::Regex(re)
        };
        Ok(Matcher {
            name: name.to_owned(),
            op,
        })
    }

    /// Parses `k=v`, `k!=v`, `k=~regex` or `k!~regex` (the form rule files
    /// and the CLI use).
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let ops = ["!=", "=~", "!~", "="];
        let (pos, op) = ops
            .iter()
            .filter_map(|op| text.find(op).map(|pos| (pos, *op)))
            .min_by_key(|(pos, op)| (*pos, std::cmp::Reverse(op.len())))
            .ok_or_else(|| {
                format!("{text:?} is not a matcher; write k=v, k!=v, k=~regex or k!~regex")
            })?;
        let name = text[..pos].trim();
        if name.is_empty() {
            return Err(format!("{text:?}: label name is empty"));
        }
        let value = &text[pos + op.len()..];
        let matcher = match op {
            "=" => Matcher {
                name: name.to_owned(),
                op: MatchOp::Equal(value.to_owned()),
            },
            "!=" => Matcher {
                name: name.to_owned(),
                op: MatchOp::NotEqual(value.to_owned()),
            },
            _ => Matcher::regex(name, value, op == "!~").map_err(|e| e.to_string())?,
        };
        Ok(matcher)
    }

    /// Whether `value` (or "" for a missing label) satisfies the matcher.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let value = value.unwrap_or("");
        match &self.op {
            MatchOp::Equal(v) => value == v,
            MatchOp::NotEqual(v) => value != v,
            MatchOp::Regex(re) => re.is_match(value),
            MatchOp::NotRegex(re) => !re.is_match(value),
        }
    }
}

/// Selects series by metric name (None = any) and matchers (all must hold).
#[derive(Clone, Debug, Default)]
pub struct Selector {
    /// Metric name to match exactly, or any.
    pub metric: Option<String>,
    /// Label matchers; one on `__name__` matches the metric name (as in
    /// Prometheus), so one selector can take several metrics
    /// (`__name__=~"net_rx_.*|net_tx_.*"`).
    pub matchers: Vec<Matcher>,
}

/// The pseudo-label that stands for the metric name in matchers.
pub const NAME_LABEL: &str = "__name__";

impl Selector {
    /// Whether the series is selected.
    pub fn matches(&self, series: &SeriesKey) -> bool {
        if self.metric.as_ref().is_some_and(|m| *m != series.metric) {
            return false;
        }
        self.matchers.iter().all(|m| {
            if m.name == NAME_LABEL {
                m.matches(Some(&series.metric))
            } else {
                m.matches(series.labels.get(&m.name))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn eq(name: &str, v: &str) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal(v.into()),
        }
    }

    fn ne(name: &str, v: &str) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::NotEqual(v.into()),
        }
    }

    #[track_caller]
    fn check(metric: Option<&str>, matchers: Vec<Matcher>, s: &SeriesKey, expected: bool) {
        let sel = Selector {
            metric: metric.map(str::to_owned),
            matchers,
        };
        assert_eq!(sel.matches(s), expected, "{s}");
    }

    #[test]
    fn matchers_select_series() {
        let cpu = SeriesKey::of("cpu_usage_percent", &[("host", "a"), ("cpu", "total")]);
        check(None, vec![], &cpu, true);
        check(Some("cpu_usage_percent"), vec![], &cpu, true);
        check(Some("memory_used_percent"), vec![], &cpu, false);
        check(None, vec![eq("host", "a")], &cpu, true);
        check(None, vec![eq("host", "b")], &cpu, false);
        check(None, vec![ne("host", "b")], &cpu, true);
        check(None, vec![eq("host", "a"), eq("cpu", "0")], &cpu, false);
        check(None, vec![eq("region", "")], &cpu, true);
        check(None, vec![ne("region", "")], &cpu, false);
        // __name__ is the metric name: several metrics in one selector.
        let either = Matcher::regex(NAME_LABEL, "cpu_usage_percent|load_average", false).unwrap();
        check(None, vec![either.clone(), eq("host", "a")], &cpu, true);
        let mem = SeriesKey::of("memory_used_bytes", &[("host", "a")]);
        check(None, vec![either, eq("host", "a")], &mem, false);
        check(None, vec![eq(NAME_LABEL, "memory_used_bytes")], &mem, true);
        check(
            None,
            vec![Matcher::regex("cpu", "tot.*", false).unwrap()],
            &cpu,
            true,
        );
        check(
            None,
            vec![Matcher::regex("cpu", "tot", false).unwrap()],
            &cpu,
            false,
        );
        check(
            None,
            vec![Matcher::regex("cpu", "[0-9]+", true).unwrap()],
            &cpu,
            true,
        );
    }

    #[test]
    fn bad_regex_names_label() {
        let err = Matcher::regex("host", "(", false).unwrap_err().to_string();
        assert!(
            err.starts_with("label matcher host: invalid regex \"(\""),
            "{err}"
        );
    }

    #[test]
    fn duplicate_label_names_are_refused() {
        let dup = Labels::from_pairs(vec![("a".into(), "1".into()), ("a".into(), "2".into())]);
        assert_eq!(dup, Err("a".to_string()));
    }
}
