//! The PromQL evaluator: a parsed expression (GreptimeDB's `promql-parser`)
//! evaluated over the steps of an instant or range query, step by step as
//! Prometheus 2.42 does — selectors look back 5 minutes, range selectors
//! take the closed interval `[t − range, t]`, `rate`/`increase`/`delta`
//! extrapolate as Prometheus' `extrapolatedRate`, aggregations follow its
//! arithmetic (incremental mean, Welford variance, interpolated quantile).
//! What it does not implement is refused with the construct's name.
//! Pure over a [`Source`]; `tests/tests/promql.rs` compares it with a real
//! Prometheus on the same data.

use std::collections::HashMap;

use nightjar_model::histogram::Histogram;
use nightjar_model::selector::{MatchOp, Matcher, Selector};
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector, Offset,
    VectorMatchCardinality, VectorSelector,
};

use super::value::{LabelSet, NAME, RawSeries, StepSeries, Value, without_name};

/// How far back an instant selector looks for a sample (Prometheus'
/// default `--query.lookback-delta`).
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// Most points one query may read (a guard for the collector's memory).
pub const MAX_POINTS: usize = 50_000_000;

/// A histogram series: labels and its histograms, oldest first.
pub type HistogramSeries = (LabelSet, Vec<(i64, Histogram)>);

/// Where the evaluator reads series from.
pub trait Source {
    /// Float series matching `selector` with their points in `[start, end]`.
    fn floats(
        &self,
        selector: &Selector,
        start: i64,
        end: i64,
    ) -> std::result::Result<Vec<RawSeries>, String>;
    /// Histogram series matching `selector` with their histograms in
    /// `[start, end]`.
    fn histograms(
        &self,
        selector: &Selector,
        start: i64,
        end: i64,
    ) -> std::result::Result<Vec<HistogramSeries>, String>;
}

/// The steps of a query: `start`, `start + step`, … up to `end`.
#[derive(Clone, Copy, Debug)]
pub struct Steps {
    /// First evaluation time (ms).
    pub start: i64,
    /// Last evaluation time (ms), inclusive.
    pub end: i64,
    /// Step (ms, > 0).
    pub step: i64,
}

impl Steps {
    /// One evaluation at `t`.
    pub fn instant(t: i64) -> Steps {
        Steps {
            start: t,
            end: t,
            step: 1,
        }
    }

    fn times(&self) -> Vec<i64> {
        let mut out = Vec::new();
        let mut t = self.start;
        while t <= self.end {
            out.push(t);
            t += self.step;
        }
        out
    }
}

/// Why a query has no answer.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// A construct this evaluator does not implement (named).
    #[error("unsupported PromQL: {0}")]
    Unsupported(String),
    /// The query is valid PromQL but cannot be evaluated as asked.
    #[error("{0}")]
    Execution(String),
    /// The storage could not be read.
    #[error("reading series: {0}")]
    Storage(String),
}

type Result<T> = std::result::Result<T, EvalError>;

/// Evaluates `expr` over `steps`.
pub fn evaluate(expr: &Expr, steps: Steps, source: &dyn Source) -> Result<Value> {
    let times = steps.times();
    if times.is_empty() {
        return Err(EvalError::Execution("end is before start".into()));
    }
    let ev = Evaluator { times, source };
    let value = ev.eval(expr)?;
    if let Value::Vector(series) = &value {
        check_distinct(series)?;
    }
    Ok(value)
}

/// Prometheus refuses a vector holding one label set twice at a step.
fn check_distinct(series: &[StepSeries]) -> Result<()> {
    let mut seen: HashMap<&LabelSet, &StepSeries> = HashMap::new();
    for s in series {
        if let Some(other) = seen.insert(&s.labels, s)
            && s.values
                .iter()
                .zip(&other.values)
                .any(|(a, b)| a.is_some() && b.is_some())
        {
            return Err(EvalError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

struct Evaluator<'a> {
    times: Vec<i64>,
    source: &'a dyn Source,
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// Our selector for a PromQL vector selector.
pub fn selector(vs: &VectorSelector) -> Result<Selector> {
    if vs.at.is_some() {
        return Err(EvalError::Unsupported("the @ modifier".into()));
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err(EvalError::Unsupported(
            "`or` inside a selector's braces".into(),
        ));
    }
    let mut matchers = Vec::new();
    for m in &vs.matchers.matchers {
        let matcher = match &m.op {
            PMatchOp::Equal => Matcher {
                name: m.name.clone(),
                op: MatchOp::Equal(m.value.clone()),
            },
            PMatchOp::NotEqual => Matcher {
                name: m.name.clone(),
                op: MatchOp::NotEqual(m.value.clone()),
            },
            PMatchOp::Re(_) => Matcher::regex(&m.name, &m.value, false)
                .map_err(|e| EvalError::Execution(e.to_string()))?,
            PMatchOp::NotRe(_) => Matcher::regex(&m.name, &m.value, true)
                .map_err(|e| EvalError::Execution(e.to_string()))?,
        };
        matchers.push(matcher);
    }
    Ok(Selector {
        metric: vs.name.clone(),
        matchers,
    })
}

/// The points of `points` (sorted) in `[lo, hi]`.
fn window(points: &[(i64, f64)], lo: i64, hi: i64) -> &[(i64, f64)] {
    let a = points.partition_point(|p| p.0 < lo);
    let b = points.partition_point(|p| p.0 <= hi);
    &points[a..b.max(a)]
}

/// A range argument: its series over the whole query, range and offset.
struct RangeArg {
    series: Vec<RawSeries>,
    range_ms: i64,
    offset_ms: i64,
}

impl Evaluator<'_> {
    fn steps(&self) -> usize {
        self.times.len()
    }

    fn eval(&self, expr: &Expr) -> Result<Value> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(vec![n.val; self.steps()])),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Value::Scalar(v) => Ok(Value::Scalar(v.into_iter().map(|x| -x).collect())),
                Value::Vector(series) => Ok(Value::Vector(
                    series
                        .into_iter()
                        .map(|s| StepSeries {
                            labels: without_name(&s.labels),
                            values: s.values.into_iter().map(|v| v.map(|x| -x)).collect(),
                        })
                        .collect(),
                )),
                _ => Err(EvalError::Execution(
                    "unary minus needs a scalar or an instant vector".into(),
                )),
            },
            Expr::VectorSelector(vs) => self.select(vs).map(Value::Vector),
            Expr::MatrixSelector(ms) => {
                if self.steps() != 1 {
                    return Err(EvalError::Execution(
                        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
                    ));
                }
                let arg = self.range_arg(ms)?;
                let t = self.times[0] - arg.offset_ms;
                Ok(Value::Matrix(
                    arg.series
                        .into_iter()
                        .map(|s| RawSeries {
                            points: window(&s.points, t - arg.range_ms, t).to_vec(),
                            labels: s.labels,
                        })
                        .filter(|s| !s.points.is_empty())
                        .collect(),
                ))
            }
            Expr::Subquery(_) => Err(EvalError::Unsupported("subqueries".into())),
            Expr::Extension(_) => Err(EvalError::Unsupported("extension expressions".into())),
            Expr::Call(call) => self.call(call),
            Expr::Aggregate(agg) => self.aggregate(agg),
            Expr::Binary(bin) => self.binary(bin),
        }
    }

    /// Reads float series for `[start, end]` of the query shifted by
    /// `offset` and widened by `back`.
    fn read(&self, vs: &VectorSelector, back: i64) -> Result<(Vec<RawSeries>, i64)> {
        let selector = selector(vs)?;
        let offset = offset_ms(&vs.offset);
        let start = self.times[0] - offset - back;
        let end = self.times[self.steps() - 1] - offset;
        let series = self
            .source
            .floats(&selector, start, end)
            .map_err(EvalError::Storage)?;
        let points: usize = series.iter().map(|s| s.points.len()).sum();
        if points > MAX_POINTS {
            return Err(EvalError::Execution(format!(
                "the query would read {points} points, above the limit of {MAX_POINTS}; narrow the selector or the range"
            )));
        }
        Ok((series, offset))
    }

    /// An instant vector selector: at each step the newest point within
    /// the lookback.
    fn select(&self, vs: &VectorSelector) -> Result<Vec<StepSeries>> {
        let (series, offset) = self.read(vs, LOOKBACK_MS)?;
        Ok(series
            .into_iter()
            .filter_map(|s| {
                let values: Vec<Option<f64>> = self
                    .times
                    .iter()
                    .map(|t| {
                        let r = t - offset;
                        let i = s.points.partition_point(|p| p.0 <= r);
                        (i > 0 && s.points[i - 1].0 >= r - LOOKBACK_MS).then(|| s.points[i - 1].1)
                    })
                    .collect();
                values.iter().any(Option::is_some).then_some(StepSeries {
                    labels: s.labels,
                    values,
                })
            })
            .collect())
    }

    fn range_arg(&self, ms: &MatrixSelector) -> Result<RangeArg> {
        let range_ms = ms.range.as_millis() as i64;
        let (series, offset_ms) = self.read(&ms.vs, range_ms)?;
        Ok(RangeArg {
            series,
            range_ms,
            offset_ms,
        })
    }

    /// A function of a range vector, applied at every step to the window
    /// of each series; None drops the series at that step.
    fn over_range(
        &self,
        arg: &Expr,
        keep_name: bool,
        f: impl Fn(&[(i64, f64)], i64, i64) -> Option<f64>,
    ) -> Result<Value> {
        let Expr::MatrixSelector(ms) = arg else {
            return Err(EvalError::Unsupported(
                "a range function's argument other than a range selector (subqueries)".into(),
            ));
        };
        let arg = self.range_arg(ms)?;
        let mut out = Vec::new();
        for s in arg.series {
            let values: Vec<Option<f64>> = self
                .times
                .iter()
                .map(|t| {
                    let end = t - arg.offset_ms;
                    let start = end - arg.range_ms;
                    let w = window(&s.points, start, end);
                    if w.is_empty() { None } else { f(w, start, end) }
                })
                .collect();
            if values.iter().any(Option::is_some) {
                out.push(StepSeries {
                    labels: if keep_name {
                        s.labels
                    } else {
                        without_name(&s.labels)
                    },
                    values,
                });
            }
        }
        Ok(Value::Vector(out))
    }

    fn scalar_arg(&self, expr: &Expr, what: &str) -> Result<Vec<f64>> {
        match self.eval(expr)? {
            Value::Scalar(v) => Ok(v),
            _ => Err(EvalError::Execution(format!("{what} must be a scalar"))),
        }
    }

    fn vector_arg(&self, expr: &Expr, what: &str) -> Result<Vec<StepSeries>> {
        match self.eval(expr)? {
            Value::Vector(v) => Ok(v),
            _ => Err(EvalError::Execution(format!(
                "{what} must be an instant vector"
            ))),
        }
    }

    /// A value-wise function of an instant vector (drops the name).
    fn map_vector(&self, arg: &Expr, f: impl Fn(f64, usize) -> f64) -> Result<Value> {
        let series = self.vector_arg(arg, "the argument")?;
        Ok(Value::Vector(
            series
                .into_iter()
                .map(|s| StepSeries {
                    labels: without_name(&s.labels),
                    values: s
                        .values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| v.map(|x| f(x, i)))
                        .collect(),
                })
                .collect(),
        ))
    }

    fn call(&self, call: &Call) -> Result<Value> {
        let name = call.func.name;
        let args = &call.args.args;
        let arg = |i: usize| -> Result<&Expr> {
            args.get(i)
                .map(|b| b.as_ref())
                .ok_or_else(|| EvalError::Execution(format!("{name}: missing argument {}", i + 1)))
        };
        match name {
            "rate" => self.over_range(arg(0)?, false, |w, s, e| extrapolated(w, s, e, true, true)),
            "increase" => {
                self.over_range(arg(0)?, false, |w, s, e| extrapolated(w, s, e, true, false))
            }
            "delta" => self.over_range(arg(0)?, false, |w, s, e| {
                extrapolated(w, s, e, false, false)
            }),
            "irate" => self.over_range(arg(0)?, false, |w, _, _| instant_delta(w, true)),
            "idelta" => self.over_range(arg(0)?, false, |w, _, _| instant_delta(w, false)),
            "changes" => self.over_range(arg(0)?, false, |w, _, _| {
                Some(
                    w.windows(2)
                        .filter(|p| p[0].1 != p[1].1 && !(p[0].1.is_nan() && p[1].1.is_nan()))
                        .count() as f64,
                )
            }),
            "resets" => self.over_range(arg(0)?, false, |w, _, _| {
                Some(w.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64)
            }),
            "avg_over_time" => self.over_range(arg(0)?, false, |w, _, _| {
                // Prometheus' incremental mean.
                let mut mean = 0.0;
                let mut count = 0.0;
                for &(_, v) in w {
                    count += 1.0;
                    mean += v / count - mean / count;
                }
                Some(mean)
            }),
            "sum_over_time" => {
                self.over_range(arg(0)?, false, |w, _, _| Some(w.iter().map(|p| p.1).sum()))
            }
            "count_over_time" => self.over_range(arg(0)?, false, |w, _, _| Some(w.len() as f64)),
            "min_over_time" => self.over_range(arg(0)?, false, |w, _, _| {
                Some(
                    w.iter()
                        .map(|p| p.1)
                        .fold(f64::NAN, |m, v| if m.is_nan() || v < m { v } else { m }),
                )
            }),
            "max_over_time" => self.over_range(arg(0)?, false, |w, _, _| {
                Some(
                    w.iter()
                        .map(|p| p.1)
                        .fold(f64::NAN, |m, v| if m.is_nan() || v > m { v } else { m }),
                )
            }),
            "last_over_time" => self.over_range(arg(0)?, true, |w, _, _| w.last().map(|p| p.1)),
            "present_over_time" => self.over_range(arg(0)?, false, |_, _, _| Some(1.0)),
            "stddev_over_time" => self.over_range(arg(0)?, false, |w, _, _| {
                Some(welford(w.iter().map(|p| p.1)).sqrt())
            }),
            "stdvar_over_time" => self.over_range(arg(0)?, false, |w, _, _| {
                Some(welford(w.iter().map(|p| p.1)))
            }),
            "quantile_over_time" => {
                let q = self.scalar_arg(arg(0)?, "quantile_over_time's quantile")?;
                self.quantile_over_time(q, arg(1)?)
            }
            "histogram_quantile" => {
                let q = self.scalar_arg(arg(0)?, "histogram_quantile's quantile")?;
                self.histogram_quantile(q, arg(1)?)
            }
            "abs" => self.map_vector(arg(0)?, |x, _| x.abs()),
            "ceil" => self.map_vector(arg(0)?, |x, _| x.ceil()),
            "floor" => self.map_vector(arg(0)?, |x, _| x.floor()),
            "sqrt" => self.map_vector(arg(0)?, |x, _| x.sqrt()),
            "exp" => self.map_vector(arg(0)?, |x, _| x.exp()),
            "ln" => self.map_vector(arg(0)?, |x, _| x.ln()),
            "log2" => self.map_vector(arg(0)?, |x, _| x.log2()),
            "log10" => self.map_vector(arg(0)?, |x, _| x.log10()),
            "sgn" => self.map_vector(arg(0)?, |x, _| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x
                }
            }),
            "round" => {
                let to = match args.get(1) {
                    Some(e) => self.scalar_arg(e, "round's to_nearest")?,
                    None => vec![1.0; self.steps()],
                };
                // Prometheus: floor(v / to + 0.5) * to (halves round up).
                self.map_vector(arg(0)?, |x, i| (x / to[i] + 0.5).floor() * to[i])
            }
            "clamp" => {
                let lo = self.scalar_arg(arg(1)?, "clamp's min")?;
                let hi = self.scalar_arg(arg(2)?, "clamp's max")?;
                self.map_vector(arg(0)?, |x, i| {
                    if lo[i] > hi[i] {
                        f64::NAN
                    } else {
                        x.max(lo[i]).min(hi[i])
                    }
                })
                .map(|v| drop_nan_series(v, &lo, &hi))
            }
            "clamp_min" => {
                let lo = self.scalar_arg(arg(1)?, "clamp_min's min")?;
                self.map_vector(arg(0)?, |x, i| x.max(lo[i]))
            }
            "clamp_max" => {
                let hi = self.scalar_arg(arg(1)?, "clamp_max's max")?;
                self.map_vector(arg(0)?, |x, i| x.min(hi[i]))
            }
            "scalar" => {
                let series = self.vector_arg(arg(0)?, "scalar's argument")?;
                Ok(Value::Scalar(
                    (0..self.steps())
                        .map(|i| {
                            let mut present = series.iter().filter_map(|s| s.values[i]);
                            match (present.next(), present.next()) {
                                (Some(v), None) => v,
                                _ => f64::NAN,
                            }
                        })
                        .collect(),
                ))
            }
            "vector" => {
                let v = self.scalar_arg(arg(0)?, "vector's argument")?;
                Ok(Value::Vector(vec![StepSeries {
                    labels: LabelSet::new(),
                    values: v.into_iter().map(Some).collect(),
                }]))
            }
            "time" => Ok(Value::Scalar(
                self.times.iter().map(|t| *t as f64 / 1000.0).collect(),
            )),
            "sort" | "sort_desc" => self.eval(arg(0)?),
            other => Err(EvalError::Unsupported(format!("function {other}()"))),
        }
    }

    /// `quantile_over_time(φ, x[d])`: over the window's points, or, for a
    /// Nightjar histogram series, over every observation of the window's
    /// histograms (merged).
    fn quantile_over_time(&self, q: Vec<f64>, arg: &Expr) -> Result<Value> {
        let Expr::MatrixSelector(ms) = arg else {
            return Err(EvalError::Unsupported(
                "quantile_over_time of anything but a range selector".into(),
            ));
        };
        let mut out = match self.over_range(arg, false, |w, _, end| {
            let i = self.times.iter().position(|t| *t >= end).unwrap_or(0);
            let mut values: Vec<f64> = w.iter().map(|p| p.1).collect();
            Some(quantile(q[i.min(q.len() - 1)], &mut values))
        })? {
            Value::Vector(v) => v,
            _ => unreachable!("over_range gives a vector"),
        };
        // Offsets shift `end`; the step index is found by position instead.
        let range_ms = ms.range.as_millis() as i64;
        let offset = offset_ms(&ms.vs.offset);
        let selector = selector(&ms.vs)?;
        let hist = self
            .source
            .histograms(
                &selector,
                self.times[0] - offset - range_ms,
                self.times[self.steps() - 1] - offset,
            )
            .map_err(EvalError::Storage)?;
        for (labels, hs) in hist {
            let values: Vec<Option<f64>> = self
                .times
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let end = t - offset;
                    merged(&hs, end - range_ms, end).map(|h| h.quantile(q[i]))
                })
                .collect();
            if values.iter().any(Option::is_some) {
                out.push(StepSeries {
                    labels: without_name(&labels),
                    values,
                });
            }
        }
        Ok(Value::Vector(out))
    }

    /// `histogram_quantile(φ, x)` for a Nightjar histogram series `x`: the
    /// quantile of its newest histogram within the lookback. (Prometheus'
    /// `le`-bucket form is not implemented.)
    fn histogram_quantile(&self, q: Vec<f64>, arg: &Expr) -> Result<Value> {
        let Expr::VectorSelector(vs) = arg else {
            return Err(EvalError::Unsupported(
                "histogram_quantile over Prometheus `le` buckets; give it a Nightjar histogram series selector, or use quantile_over_time(φ, series[range])".into(),
            ));
        };
        let selector = selector(vs)?;
        let offset = offset_ms(&vs.offset);
        let hist = self
            .source
            .histograms(
                &selector,
                self.times[0] - offset - LOOKBACK_MS,
                self.times[self.steps() - 1] - offset,
            )
            .map_err(EvalError::Storage)?;
        let mut out = Vec::new();
        for (labels, hs) in hist {
            let values: Vec<Option<f64>> = self
                .times
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let r = t - offset;
                    let j = hs.partition_point(|h| h.0 <= r);
                    (j > 0 && hs[j - 1].0 >= r - LOOKBACK_MS).then(|| hs[j - 1].1.quantile(q[i]))
                })
                .collect();
            if values.iter().any(Option::is_some) {
                out.push(StepSeries {
                    labels: without_name(&labels),
                    values,
                });
            }
        }
        Ok(Value::Vector(out))
    }

    fn aggregate(&self, agg: &AggregateExpr) -> Result<Value> {
        let op = agg.op.to_string().to_lowercase();
        let series = self.vector_arg(&agg.expr, &format!("{op}'s argument"))?;
        let param = match &agg.param {
            Some(p) if op != "count_values" => {
                Some(self.scalar_arg(p, &format!("{op}'s parameter"))?)
            }
            _ => None,
        };
        let key_of = |labels: &LabelSet| -> LabelSet {
            match &agg.modifier {
                None => LabelSet::new(),
                Some(LabelModifier::Include(by)) => by
                    .labels
                    .iter()
                    .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                    .collect(),
                Some(LabelModifier::Exclude(without)) => labels
                    .iter()
                    .filter(|(n, _)| *n != NAME && !without.labels.contains(n))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect(),
            }
        };
        // Groups in first-seen order.
        let mut groups: Vec<(LabelSet, Vec<usize>)> = Vec::new();
        let mut index: HashMap<LabelSet, usize> = HashMap::new();
        for (i, s) in series.iter().enumerate() {
            let key = key_of(&s.labels);
            let g = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        let n = self.steps();
        match op.as_str() {
            "topk" | "bottomk" => {
                let k = param.ok_or_else(|| EvalError::Execution(format!("{op} needs k")))?;
                let mut values: Vec<Vec<Option<f64>>> = vec![vec![None; n]; series.len()];
                for (_, members) in &groups {
                    for step in 0..n {
                        let k = k[step];
                        if k < 1.0 {
                            continue;
                        }
                        let mut present: Vec<(usize, f64)> = members
                            .iter()
                            .filter_map(|&i| series[i].values[step].map(|v| (i, v)))
                            .collect();
                        let better = |a: f64, b: f64| -> std::cmp::Ordering {
                            // NaN sorts last either way, as in Prometheus.
                            match (a.is_nan(), b.is_nan()) {
                                (true, true) => std::cmp::Ordering::Equal,
                                (true, false) => std::cmp::Ordering::Greater,
                                (false, true) => std::cmp::Ordering::Less,
                                _ if op == "topk" => b.total_cmp(&a),
                                _ => a.total_cmp(&b),
                            }
                        };
                        present.sort_by(|a, b| better(a.1, b.1));
                        for (i, v) in present.into_iter().take(k as usize) {
                            values[i][step] = Some(v);
                        }
                    }
                }
                Ok(Value::Vector(
                    series
                        .into_iter()
                        .zip(values)
                        .filter(|(_, v)| v.iter().any(Option::is_some))
                        .map(|(s, values)| StepSeries {
                            labels: s.labels,
                            values,
                        })
                        .collect(),
                ))
            }
            "sum" | "avg" | "min" | "max" | "count" | "group" | "stddev" | "stdvar"
            | "quantile" => {
                let mut out = Vec::new();
                for (key, members) in groups {
                    let values: Vec<Option<f64>> =
                        (0..n)
                            .map(|step| {
                                let mut xs: Vec<f64> = members
                                    .iter()
                                    .filter_map(|&i| series[i].values[step])
                                    .collect();
                                if xs.is_empty() {
                                    return None;
                                }
                                Some(match op.as_str() {
                                    "sum" => xs.iter().sum(),
                                    "avg" => {
                                        let mut mean = 0.0;
                                        for (c, v) in xs.iter().enumerate() {
                                            let c = (c + 1) as f64;
                                            mean += v / c - mean / c;
                                        }
                                        mean
                                    }
                                    "min" => xs.iter().copied().fold(f64::NAN, |m, v| {
                                        if m.is_nan() || v < m { v } else { m }
                                    }),
                                    "max" => xs.iter().copied().fold(f64::NAN, |m, v| {
                                        if m.is_nan() || v > m { v } else { m }
                                    }),
                                    "count" => xs.len() as f64,
                                    "group" => 1.0,
                                    "stdvar" => welford(xs.iter().copied()),
                                    "stddev" => welford(xs.iter().copied()).sqrt(),
                                    _ => {
                                        let q = param.as_ref().map_or(f64::NAN, |p| p[step]);
                                        quantile(q, &mut xs)
                                    }
                                })
                            })
                            .collect();
                    if values.iter().any(Option::is_some) {
                        out.push(StepSeries {
                            labels: key,
                            values,
                        });
                    }
                }
                Ok(Value::Vector(out))
            }
            other => Err(EvalError::Unsupported(format!("aggregation {other}"))),
        }
    }

    fn binary(&self, bin: &BinaryExpr) -> Result<Value> {
        let op = bin.op.to_string().to_lowercase();
        let return_bool = bin.return_bool();
        let lhs = self.eval(&bin.lhs)?;
        let rhs = self.eval(&bin.rhs)?;
        let comparison = matches!(op.as_str(), "==" | "!=" | ">" | "<" | ">=" | "<=");
        let set = matches!(op.as_str(), "and" | "or" | "unless");
        let n = self.steps();
        match (lhs, rhs) {
            (Value::Scalar(a), Value::Scalar(b)) => {
                if comparison && !return_bool {
                    return Err(EvalError::Execution(
                        "comparisons between scalars must use BOOL modifier".into(),
                    ));
                }
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    let (v, _) = elem(&op, a[i], b[i])?;
                    out.push(v);
                }
                Ok(Value::Scalar(out))
            }
            (Value::Vector(v), Value::Scalar(s)) => {
                self.vector_scalar(&op, v, &s, false, return_bool, comparison)
            }
            (Value::Scalar(s), Value::Vector(v)) => {
                self.vector_scalar(&op, v, &s, true, return_bool, comparison)
            }
            (Value::Vector(l), Value::Vector(r)) => {
                if set {
                    self.set_op(&op, l, r, bin)
                } else {
                    self.vector_vector(&op, l, r, bin, return_bool, comparison)
                }
            }
            _ => Err(EvalError::Execution(format!(
                "operator {op} needs scalars or instant vectors"
            ))),
        }
    }

    fn vector_scalar(
        &self,
        op: &str,
        series: Vec<StepSeries>,
        scalar: &[f64],
        swap: bool,
        return_bool: bool,
        comparison: bool,
    ) -> Result<Value> {
        if matches!(op, "and" | "or" | "unless") {
            return Err(EvalError::Execution(format!(
                "set operator {op} not allowed in binary scalar expression"
            )));
        }
        let mut out = Vec::new();
        for s in series {
            let mut values = Vec::with_capacity(s.values.len());
            for (i, v) in s.values.iter().enumerate() {
                values.push(match v {
                    None => None,
                    Some(x) => {
                        let (a, b) = if swap {
                            (scalar[i], *x)
                        } else {
                            (*x, scalar[i])
                        };
                        let (value, keep) = elem(op, a, b)?;
                        if comparison {
                            if return_bool {
                                Some(if keep { 1.0 } else { 0.0 })
                            } else if keep {
                                // The vector's value, whichever side it is on.
                                Some(*x)
                            } else {
                                None
                            }
                        } else {
                            Some(value)
                        }
                    }
                });
            }
            if values.iter().any(Option::is_some) {
                let labels = if comparison && !return_bool {
                    s.labels
                } else {
                    without_name(&s.labels)
                };
                out.push(StepSeries { labels, values });
            }
        }
        Ok(Value::Vector(out))
    }

    fn vector_vector(
        &self,
        op: &str,
        lhs: Vec<StepSeries>,
        rhs: Vec<StepSeries>,
        bin: &BinaryExpr,
        return_bool: bool,
        comparison: bool,
    ) -> Result<Value> {
        let modifier = bin.modifier.as_ref();
        let card = modifier.map_or(&VectorMatchCardinality::OneToOne, |m| &m.card);
        let matching = modifier.and_then(|m| m.matching.as_ref());
        let sig = |labels: &LabelSet| signature(labels, matching);
        // The "one" side, by signature.
        let (many, one, swap) = match card {
            VectorMatchCardinality::OneToMany(_) => (rhs, lhs, true),
            _ => (lhs, rhs, false),
        };
        let mut by_sig: HashMap<LabelSet, &StepSeries> = HashMap::new();
        for s in &one {
            if by_sig.insert(sig(&s.labels), s).is_some() {
                let side = if swap { "left" } else { "right" };
                return Err(EvalError::Execution(format!(
                    "found duplicate series for the match group on the {side} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side"
                )));
            }
        }
        let include: Vec<String> = card.labels().map_or(Vec::new(), |l| l.labels.clone());
        let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
        let mut out: Vec<StepSeries> = Vec::new();
        let mut seen_one_to_one: HashMap<LabelSet, ()> = HashMap::new();
        for m in &many {
            let key = sig(&m.labels);
            let Some(o) = by_sig.get(&key) else { continue };
            if one_to_one && seen_one_to_one.insert(key.clone(), ()).is_some() {
                return Err(EvalError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                ));
            }
            // Result labels: Prometheus' resultMetric.
            let mut labels = m.labels.clone();
            if !comparison || return_bool {
                labels.remove(NAME);
            }
            if one_to_one {
                match matching {
                    Some(LabelModifier::Include(on)) => {
                        labels.retain(|n, _| on.labels.contains(n));
                    }
                    Some(LabelModifier::Exclude(ignoring)) => {
                        labels.retain(|n, _| !ignoring.labels.contains(n));
                    }
                    None => {}
                }
            }
            for name in &include {
                match o.labels.get(name) {
                    Some(v) => {
                        labels.insert(name.clone(), v.clone());
                    }
                    None => {
                        labels.remove(name);
                    }
                }
            }
            let mut values = Vec::with_capacity(m.values.len());
            for (mv, ov) in m.values.iter().zip(&o.values) {
                values.push(match (mv, ov) {
                    (Some(a), Some(b)) => {
                        let (l, r) = if swap { (*b, *a) } else { (*a, *b) };
                        let (value, keep) = elem(op, l, r)?;
                        if comparison {
                            if return_bool {
                                Some(if keep { 1.0 } else { 0.0 })
                            } else if keep {
                                Some(l)
                            } else {
                                None
                            }
                        } else {
                            Some(value)
                        }
                    }
                    _ => None,
                });
            }
            if values.iter().any(Option::is_some) {
                out.push(StepSeries { labels, values });
            }
        }
        Ok(Value::Vector(out))
    }

    fn set_op(
        &self,
        op: &str,
        lhs: Vec<StepSeries>,
        rhs: Vec<StepSeries>,
        bin: &BinaryExpr,
    ) -> Result<Value> {
        let matching = bin.modifier.as_ref().and_then(|m| m.matching.as_ref());
        let n = self.steps();
        // Per signature, the steps at which the side has a value.
        let present = |side: &[StepSeries]| {
            let mut map: HashMap<LabelSet, Vec<bool>> = HashMap::new();
            for s in side {
                let e = map
                    .entry(signature(&s.labels, matching))
                    .or_insert_with(|| vec![false; n]);
                for (i, v) in s.values.iter().enumerate() {
                    e[i] |= v.is_some();
                }
            }
            map
        };
        match op {
            "and" | "unless" => {
                let right = present(&rhs);
                let keep_if = op == "and";
                Ok(Value::Vector(
                    lhs.into_iter()
                        .filter_map(|s| {
                            let r = right.get(&signature(&s.labels, matching));
                            let values: Vec<Option<f64>> = s
                                .values
                                .iter()
                                .enumerate()
                                .map(|(i, v)| {
                                    let there = r.is_some_and(|r| r[i]);
                                    v.filter(|_| there == keep_if)
                                })
                                .collect();
                            values.iter().any(Option::is_some).then_some(StepSeries {
                                labels: s.labels,
                                values,
                            })
                        })
                        .collect(),
                ))
            }
            _ => {
                let left = present(&lhs);
                let mut out = lhs;
                for s in rhs {
                    let l = left.get(&signature(&s.labels, matching));
                    let values: Vec<Option<f64>> = s
                        .values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| v.filter(|_| !l.is_some_and(|l| l[i])))
                        .collect();
                    if values.iter().any(Option::is_some) {
                        out.push(StepSeries {
                            labels: s.labels,
                            values,
                        });
                    }
                }
                Ok(Value::Vector(out))
            }
        }
    }
}

/// The labels two series are matched on: `on(...)` keeps those, otherwise
/// all but `ignoring(...)` and the name.
fn signature(labels: &LabelSet, matching: Option<&LabelModifier>) -> LabelSet {
    match matching {
        Some(LabelModifier::Include(on)) => labels
            .iter()
            .filter(|(n, _)| on.labels.contains(n))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(ignoring)) => labels
            .iter()
            .filter(|(n, _)| *n != NAME && !ignoring.labels.contains(n))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect(),
        None => without_name(labels),
    }
}

/// One binary operation on two numbers: (result, whether a comparison
/// holds).
fn elem(op: &str, a: f64, b: f64) -> Result<(f64, bool)> {
    Ok(match op {
        "+" => (a + b, true),
        "-" => (a - b, true),
        "*" => (a * b, true),
        "/" => (a / b, true),
        "%" => (a % b, true),
        "^" => (a.powf(b), true),
        "atan2" => (a.atan2(b), true),
        "==" => (f64::from(u8::from(a == b)), a == b),
        "!=" => (f64::from(u8::from(a != b)), a != b),
        ">" => (f64::from(u8::from(a > b)), a > b),
        "<" => (f64::from(u8::from(a < b)), a < b),
        ">=" => (f64::from(u8::from(a >= b)), a >= b),
        "<=" => (f64::from(u8::from(a <= b)), a <= b),
        other => return Err(EvalError::Unsupported(format!("operator {other}"))),
    })
}

/// Series whose clamp bounds crossed (NaN everywhere) are dropped, as
/// Prometheus returns nothing for `clamp` with min > max.
fn drop_nan_series(value: Value, lo: &[f64], hi: &[f64]) -> Value {
    match value {
        Value::Vector(series) => Value::Vector(
            series
                .into_iter()
                .map(|mut s| {
                    for (i, v) in s.values.iter_mut().enumerate() {
                        if lo[i] > hi[i] {
                            *v = None;
                        }
                    }
                    s
                })
                .filter(|s| s.values.iter().any(Option::is_some))
                .collect(),
        ),
        other => other,
    }
}

/// Prometheus' `extrapolatedRate`: the change over the window, counter
/// resets undone for counters, extrapolated towards the window's edges
/// (not past where a counter would have been zero), per second for rates.
pub fn extrapolated(
    w: &[(i64, f64)],
    start: i64,
    end: i64,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.1 - first.1;
    if counter {
        let mut previous = 0.0;
        for &(_, v) in w {
            if v < previous {
                result += previous;
            }
            previous = v;
        }
    }
    let mut to_start = (first.0 - start) as f64 / 1000.0;
    let to_end = (end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let average = sampled / (w.len() - 1) as f64;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    result *= interval / sampled;
    if rate {
        result /= (end - start) as f64 / 1000.0;
    }
    Some(result)
}

/// `irate` (counter) and `idelta`: from the window's last two points.
fn instant_delta(w: &[(i64, f64)], rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (a, b) = (w[w.len() - 2], w[w.len() - 1]);
    let mut result = if rate && b.1 < a.1 { b.1 } else { b.1 - a.1 };
    if rate {
        let dt = (b.0 - a.0) as f64 / 1000.0;
        if dt == 0.0 {
            return None;
        }
        result /= dt;
    }
    Some(result)
}

/// Population variance, Welford's way (as Prometheus computes it).
fn welford(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        m2 += delta * (v - mean);
    }
    m2 / count
}

/// Prometheus' `quantile`: linear interpolation between the closest ranks.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// The merge of the histograms in `[lo, hi]`.
fn merged(hs: &[(i64, Histogram)], lo: i64, hi: i64) -> Option<Histogram> {
    let mut out: Option<Histogram> = None;
    for (t, h) in hs {
        if *t < lo || *t > hi {
            continue;
        }
        match &mut out {
            None => out = Some(h.clone()),
            Some(m) => {
                let _ = m.merge(h);
            }
        }
    }
    out
}

/// Series of raw points by label set, for tests.
#[cfg(test)]
pub struct Memory(
    pub std::collections::BTreeMap<LabelSet, Vec<(i64, f64)>>,
    pub Vec<HistogramSeries>,
);

#[cfg(test)]
impl Source for Memory {
    fn floats(
        &self,
        selector: &Selector,
        start: i64,
        end: i64,
    ) -> std::result::Result<Vec<RawSeries>, String> {
        Ok(self
            .0
            .iter()
            .filter(|(labels, _)| {
                let name = labels.get(NAME).map(String::as_str);
                selector.metric.as_deref().is_none_or(|m| Some(m) == name)
                    && selector
                        .matchers
                        .iter()
                        .all(|m| m.matches(labels.get(&m.name).map(String::as_str)))
            })
            .map(|(labels, points)| RawSeries {
                labels: labels.clone(),
                points: window(points, start, end).to_vec(),
            })
            .collect())
    }

    fn histograms(
        &self,
        selector: &Selector,
        start: i64,
        end: i64,
    ) -> std::result::Result<Vec<HistogramSeries>, String> {
        Ok(self
            .1
            .iter()
            .filter(|(labels, _)| {
                selector
                    .metric
                    .as_deref()
                    .is_none_or(|m| labels.get(NAME).map(String::as_str) == Some(m))
            })
            .map(|(labels, hs)| {
                let kept = hs
                    .iter()
                    .filter(|(t, _)| *t >= start && *t <= end)
                    .cloned()
                    .collect();
                (labels.clone(), kept)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn instant(src: &Memory, q: &str, t: i64) -> Result<Value> {
        let expr = promql_parser::parser::parse(q).unwrap();
        evaluate(&expr, Steps::instant(t), src)
    }

    fn values(v: Value) -> Vec<(LabelSet, f64)> {
        match v {
            Value::Vector(s) => s
                .into_iter()
                .filter_map(|s| Some((s.labels, s.values[0]?)))
                .collect(),
            other => panic!("not a vector: {other:?}"),
        }
    }

    /// A counter rising 10 a scrape every 15 s, reset once.
    fn counter() -> Memory {
        let mut points = Vec::new();
        for i in 0..20 {
            let v = if i < 12 {
                i as f64 * 10.0
            } else {
                (i - 12) as f64 * 10.0
            };
            points.push((i * 15_000, v));
        }
        Memory(
            BTreeMap::from([(labels(&[(NAME, "req_total"), ("job", "a")]), points)]),
            Vec::new(),
        )
    }

    #[test]
    fn rate_extrapolates_as_prometheus_does() {
        // Worked example: window [60 s, 120 s] holds 60, 75, 90, 105, 120 s
        // = 40, 50, 60, 70, 80: +40 over 60 s sampled; the edges are at
        // distance 0, so no extrapolation: rate = 40 / 60.
        let src = counter();
        let got = values(instant(&src, "rate(req_total[1m])", 120_000).unwrap());
        assert_eq!(got.len(), 1);
        assert!((got[0].1 - 40.0 / 60.0).abs() < 1e-12, "{got:?}");
        assert_eq!(got[0].0, labels(&[("job", "a")]), "rate drops the name");
        // Over the reset at 180 s (110 → 0): increase counts 110 + 0 on top.
        let inc = values(instant(&src, "increase(req_total[1m])", 195_000).unwrap());
        // Window [135, 195]: 90, 100, 110, 0, 10 → 10 − 90 + 110 = 30.
        assert!((inc[0].1 - 30.0).abs() < 1e-9, "{inc:?}");
        let irate = values(instant(&src, "irate(req_total[1m])", 195_000).unwrap());
        assert!((irate[0].1 - 10.0 / 15.0).abs() < 1e-12);
    }

    #[test]
    fn selectors_look_back_five_minutes_and_unsupported_constructs_are_named() {
        let src = counter();
        assert_eq!(
            values(instant(&src, "req_total", 285_000 + 300_000).unwrap()).len(),
            1
        );
        assert!(values(instant(&src, "req_total", 285_000 + 300_001).unwrap()).is_empty());
        let err = instant(&src, "rate(req_total[5m:1m])", 0).unwrap_err();
        assert!(err.to_string().contains("subqueries"), "{err}");
        let err = instant(
            &src,
            "label_replace(req_total, \"a\", \"b\", \"c\", \"d\")",
            0,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported PromQL: function label_replace()"
        );
    }

    #[test]
    fn aggregation_and_matching_follow_prometheus() {
        let mut m = BTreeMap::new();
        for (job, inst, v) in [("a", "1", 1.0), ("a", "2", 3.0), ("b", "1", 10.0)] {
            m.insert(
                labels(&[(NAME, "x"), ("job", job), ("instance", inst)]),
                vec![(0, v)],
            );
            m.insert(
                labels(&[(NAME, "y"), ("job", job), ("instance", inst)]),
                vec![(0, v * 2.0)],
            );
        }
        let src = Memory(m, Vec::new());
        let sum = values(instant(&src, "sum by (job) (x)", 0).unwrap());
        assert_eq!(
            sum,
            [
                (labels(&[("job", "a")]), 4.0),
                (labels(&[("job", "b")]), 10.0)
            ]
        );
        let q = values(instant(&src, "quantile(0.5, x)", 0).unwrap());
        assert_eq!(q, [(labels(&[]), 3.0)]);
        let ratio = values(instant(&src, "y / x", 0).unwrap());
        assert!(
            ratio
                .iter()
                .all(|(l, v)| *v == 2.0 && !l.contains_key(NAME))
        );
        assert_eq!(ratio.len(), 3);
        let on = values(instant(&src, "y / on(job, instance) x", 0).unwrap());
        assert!(on.iter().all(|(l, _)| l.len() == 2));
        let cmp = values(instant(&src, "x > 2", 0).unwrap());
        assert_eq!(cmp.len(), 2);
        assert!(
            cmp.iter().all(|(l, _)| l[NAME] == "x"),
            "a filter keeps the name"
        );
        let top = values(instant(&src, "topk(1, x)", 0).unwrap());
        assert_eq!(top[0].1, 10.0);
        let err = instant(&src, "x + on(job) y", 0).unwrap_err();
        assert!(err.to_string().contains("many-to-many"), "{err}");
    }

    #[test]
    fn histogram_series_answer_quantiles_over_their_observations() {
        // Two minutes of a timer: 1..=100 ms, then 101..=200 ms.
        let histogram = |lo: u32| {
            let mut h = Histogram::new(1e-3);
            for v in lo..lo + 100 {
                h.record(f64::from(v) / 1000.0, 1).unwrap();
            }
            h
        };
        let src = Memory(
            BTreeMap::new(),
            vec![(
                labels(&[(NAME, "checkout_seconds"), ("host", "web-1")]),
                vec![(60_000, histogram(1)), (120_000, histogram(101))],
            )],
        );
        let over = values(
            instant(
                &src,
                "quantile_over_time(0.5, checkout_seconds[2m])",
                120_000,
            )
            .unwrap(),
        );
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].0, labels(&[("host", "web-1")]));
        assert!(
            (over[0].1 - 0.100).abs() < 0.002,
            "median of 1..200 ms: {}",
            over[0].1
        );
        let newest =
            values(instant(&src, "histogram_quantile(0.99, checkout_seconds)", 150_000).unwrap());
        assert!(
            (newest[0].1 - 0.199).abs() < 0.002,
            "p99 of 101..200 ms: {}",
            newest[0].1
        );
        let err = instant(
            &src,
            "histogram_quantile(0.9, rate(checkout_seconds[5m]))",
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("le"), "{err}");
    }
}
