//! The statsd line protocol, with the DogStatsD extensions:
//!
//! ```text
//! <name>:<value>[:<value>...]|<type>[|@<sample rate>][|#<tag>[:<value>],...]
//! ```
//!
//! Types: `c` counter, `g` gauge (a leading `+` or `-` makes it a delta),
//! `s` set, `ms` timer (milliseconds), `h` / `d` histogram. Several values
//! (`:`-separated, DogStatsD 1.1) share the type, rate and tags. Other
//! `|`-sections (DogStatsD's `|c:` container id, `|T` timestamp) are
//! ignored. Parsing borrows from the packet; nothing is allocated.

/// The kind of a statsd metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `c`: counts; summed per flush.
    Counter,
    /// `g`: last value wins; `+n` / `-n` adjust it.
    Gauge,
    /// `s`: counts distinct values per flush.
    Set,
    /// `ms`: durations in milliseconds, into a histogram of seconds.
    Timer,
    /// `h` or `d`: values into a histogram.
    Histogram,
}

impl Kind {
    /// A one-byte code, used in aggregation keys.
    pub fn code(self) -> u8 {
        match self {
            Kind::Counter => b'c',
            Kind::Gauge => b'g',
            Kind::Set => b's',
            Kind::Timer => b't',
            Kind::Histogram => b'h',
        }
    }
}

/// One parsed line, borrowing from the packet.
#[derive(Clone, Debug, PartialEq)]
pub struct Line<'a> {
    /// The metric name as sent (sanitized later, once per series).
    pub name: &'a [u8],
    /// The values (`:`-separated in the line), unparsed for sets, which
    /// count them as strings.
    pub values: &'a [u8],
    /// The kind.
    pub kind: Kind,
    /// The sample rate, 0 < rate <= 1 (1 when absent).
    pub rate: f64,
    /// The raw tag list after `#` (empty when absent).
    pub tags: &'a [u8],
}

/// Why a line was refused (the reason names the part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// No `:` between name and value, or an empty name.
    NoName,
    /// No `|type` section.
    NoType,
    /// The type is none of c, g, s, ms, h, d.
    UnknownType,
    /// No value.
    BadValue,
    /// `@rate` is not a number in (0, 1].
    BadRate,
}

impl Malformed {
    /// A short description, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Malformed::NoName => "no name (expected name:value|type)",
            Malformed::NoType => "no |type section",
            Malformed::UnknownType => "unknown type (expected c, g, s, ms, h or d)",
            Malformed::BadValue => "no value",
            Malformed::BadRate => "sample rate is not a number in (0, 1]",
        }
    }
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<Line<'_>, Malformed> {
    let colon = memchr(b':', line).ok_or(Malformed::NoName)?;
    let (name, rest) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() {
        return Err(Malformed::NoName);
    }
    let mut sections = rest.split(|&b| b == b'|');
    let values = sections.next().unwrap_or_default();
    let kind = match sections.next().ok_or(Malformed::NoType)? {
        b"c" => Kind::Counter,
        b"g" => Kind::Gauge,
        b"s" => Kind::Set,
        b"ms" => Kind::Timer,
        b"h" | b"d" => Kind::Histogram,
        _ => return Err(Malformed::UnknownType),
    };
    let mut rate = 1.0;
    let mut tags: &[u8] = &[];
    for section in sections {
        match section.first() {
            Some(b'@') => {
                rate = parse_f64(&section[1..]).ok_or(Malformed::BadRate)?;
                if !(rate > 0.0 && rate <= 1.0) {
                    return Err(Malformed::BadRate);
                }
            }
            Some(b'#') => tags = &section[1..],
            _ => {}
        }
    }
    // Numbers are parsed (once) by the aggregator, which refuses bad ones.
    if values.is_empty() {
        return Err(Malformed::BadValue);
    }
    Ok(Line {
        name,
        values,
        kind,
        rate,
        tags,
    })
}

/// A finite number, or None.
pub fn parse_f64(bytes: &[u8]) -> Option<f64> {
    let v: f64 = std::str::from_utf8(bytes).ok()?.parse().ok()?;
    v.is_finite().then_some(v)
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Tags as label pairs: `k:v` → (k, v), a bare `k` → (k, "true");
/// names are sanitized like metric names (a `host` tag becomes
/// `exported_host`: the agent's own `host` label wins).
pub fn tags(raw: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for tag in raw.split(|&b| b == b',').filter(|t| !t.is_empty()) {
        let (name, value) = match memchr(b':', tag) {
            Some(i) => (&tag[..i], &tag[i + 1..]),
            None => (tag, &b"true"[..]),
        };
        let mut name = sanitize(name, false);
        if name == "host" {
            name = "exported_host".to_owned();
        }
        let value = String::from_utf8_lossy(value).into_owned();
        // A repeated tag keeps its last value.
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(existing) => existing.1 = value,
            None => out.push((name, value)),
        }
    }
    out.sort();
    out
}

/// A Prometheus-style name: every byte outside `[a-zA-Z0-9_]` (and `:` in
/// metric names) becomes `_`, and a leading digit gets a `_` before it.
pub fn sanitize(raw: &[u8], metric: bool) -> String {
    let mut out = String::with_capacity(raw.len() + 1);
    if raw.first().is_none_or(u8::is_ascii_digit) {
        out.push('_');
    }
    for &b in raw {
        let keep = b.is_ascii_alphanumeric() || b == b'_' || (metric && b == b':');
        out.push(if keep { b as char } else { '_' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type_with_rate_and_tags() {
        let l = parse_line(b"api.hits:3|c|@0.5|#env:prod,dc:x").unwrap();
        assert_eq!(l.name, b"api.hits");
        assert_eq!(l.kind, Kind::Counter);
        assert_eq!(l.rate, 0.5);
        assert_eq!(l.tags, b"env:prod,dc:x");
        assert_eq!(l.values, b"3");
        assert_eq!(parse_line(b"t:1.5:2:3|ms").unwrap().kind, Kind::Timer);
        assert_eq!(parse_line(b"t:1.5:2:3|ms").unwrap().values, b"1.5:2:3");
        assert_eq!(parse_line(b"g:-4|g").unwrap().kind, Kind::Gauge);
        assert_eq!(parse_line(b"u:alice|s").unwrap().values, b"alice");
        assert_eq!(parse_line(b"h:7|h").unwrap().kind, Kind::Histogram);
        assert_eq!(
            parse_line(b"d:7|d|c:abc|T123").unwrap().kind,
            Kind::Histogram
        );
    }

    #[test]
    fn refuses_malformed_lines_with_the_part_named() {
        assert_eq!(parse_line(b"novalue"), Err(Malformed::NoName));
        assert_eq!(parse_line(b":1|c"), Err(Malformed::NoName));
        assert_eq!(parse_line(b"x:1"), Err(Malformed::NoType));
        assert_eq!(parse_line(b"x:1|q"), Err(Malformed::UnknownType));
        assert_eq!(parse_line(b"x:|c"), Err(Malformed::BadValue));
        assert_eq!(parse_line(b"x:1|c|@0"), Err(Malformed::BadRate));
        assert_eq!(parse_line(b"x:1|c|@2"), Err(Malformed::BadRate));
        assert_eq!(parse_line(b"x:1|c|@z"), Err(Malformed::BadRate));
    }

    #[test]
    fn names_and_tags_become_prometheus_names_and_labels() {
        assert_eq!(sanitize(b"api.req-time", true), "api_req_time");
        assert_eq!(sanitize(b"9lives", true), "_9lives");
        assert_eq!(sanitize(b"a:b", true), "a:b");
        assert_eq!(sanitize(b"a:b", false), "a_b");
        assert_eq!(
            tags(b"env:prod,host:web-9,canary,env:stage,k.8s:v"),
            [
                ("canary".to_owned(), "true".to_owned()),
                ("env".to_owned(), "stage".to_owned()),
                ("exported_host".to_owned(), "web-9".to_owned()),
                ("k_8s".to_owned(), "v".to_owned()),
            ]
        );
    }
}
