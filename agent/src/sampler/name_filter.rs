//! Include/exclude regex lists over names: which filesystems (by
//! mountpoint) and interfaces the sampler reports (`[disks]`, `[network]`).

/// A validated include/exclude filter over names.
#[derive(Clone, Debug, Default)]
pub struct NameFilter {
    include: Vec<regex::Regex>,
    exclude: Vec<regex::Regex>,
}

impl PartialEq for NameFilter {
    fn eq(&self, other: &Self) -> bool {
        let text = |v: &[regex::Regex]| v.iter().map(|r| r.as_str().to_owned()).collect::<Vec<_>>();
        text(&self.include) == text(&other.include) && text(&self.exclude) == text(&other.exclude)
    }
}

impl NameFilter {
    /// Compiles the lists; the error is (list name, index, reason).
    pub fn new(
        include: &[&str],
        exclude: &[&str],
    ) -> Result<NameFilter, (&'static str, usize, String)> {
        let compile = |list: &'static str, patterns: &[&str]| {
            patterns
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    regex::Regex::new(p).map_err(|e| (list, i, format!("invalid regex {p:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(NameFilter {
            include: compile("include", include)?,
            exclude: compile("exclude", exclude)?,
        })
    }

    /// Whether `name` is reported.
    pub fn allows(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(name)))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }
}
