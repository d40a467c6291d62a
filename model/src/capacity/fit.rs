//! Least-squares fits of a series against time, and when a fit crosses a
//! threshold (docs/capacity.md, "Method").
//!
//! Every fit is ordinary least squares on a line in transformed
//! coordinates: X is time in days (since the first point, plus one for
//! the fits that take its logarithm), Y the value or its logarithm:
//!
//! | fit | model | X | Y |
//! |---|---|---|---|
//! | linear | y = a + b·x | x | y |
//! | exponential | y = a·e^(b·x) | x | ln y |
//! | logarithmic | y = a + b·ln x | ln x | y |
//! | power | y = a·x^b | ln x | ln y |
//!
//! R² is computed on the values themselves (1 − SS_res / SS_tot of y
//! against the fitted curve), so fits of different kinds compare. The
//! crossing's interval comes from the slope's standard error: the line
//! through the centroid (X̄, Ȳ) with slope b ± 1.96·se(b) crosses the
//! threshold at the earliest and the latest time.

/// Milliseconds per day: the unit of X and of slopes.
pub const DAY_MS: f64 = 86_400_000.0;

/// The two-sided 95 % normal quantile used for the crossing's interval.
pub const Z95: f64 = 1.96;

/// A curve's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitKind {
    Linear,
    Exponential,
    Logarithmic,
    Power,
}

impl FitKind {
    /// Every kind.
    pub const ALL: [FitKind; 4] = [
        FitKind::Linear,
        FitKind::Exponential,
        FitKind::Logarithmic,
        FitKind::Power,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            FitKind::Linear => "linear",
            FitKind::Exponential => "exponential",
            FitKind::Logarithmic => "logarithmic",
            FitKind::Power => "power",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Result<FitKind, String> {
        FitKind::ALL
            .into_iter()
            .find(|k| k.as_str() == text.trim())
            .ok_or_else(|| {
                format!("fit: {text:?} is not linear, exponential, logarithmic or power")
            })
    }

    fn log_x(self) -> bool {
        matches!(self, FitKind::Logarithmic | FitKind::Power)
    }

    fn log_y(self) -> bool {
        matches!(self, FitKind::Exponential | FitKind::Power)
    }
}

/// Why a series cannot be fitted: said, never a NaN.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("{0} points; a fit needs at least 3")]
    TooFewPoints(usize),
    #[error("the points span {0:.1} s; a fit needs them spread over time")]
    NoSpan(f64),
    #[error("the {0} fit needs values above zero; this series has {1}")]
    NotPositive(&'static str, f64),
    #[error("the series holds a value that is not a number")]
    NotFinite,
}

/// A fitted curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    pub kind: FitKind,
    /// The model's coefficients (see the module's table; for exponential
    /// and power, `a` is e^intercept).
    pub a: f64,
    pub b: f64,
    /// Goodness of fit on the values, ≤ 1 (1: the curve through every
    /// point; may be negative for a curve worse than the mean).
    pub r_squared: f64,
    /// Points fitted.
    pub n: usize,
    /// Time of the first point (X's origin), epoch ms.
    pub origin_ms: i64,
    /// Time and value of the last point.
    pub last_ms: i64,
    pub last_value: f64,
    /// Standard error of the slope in transformed coordinates.
    pub slope_se: f64,
    /// Centroid in transformed coordinates.
    mean_x: f64,
    mean_y: f64,
}

/// Which side of a threshold is trouble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Trouble at or above it (usage, latency).
    Upper,
    /// Trouble at or below it (free bytes, headroom).
    Lower,
}

/// When a fit reaches a threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Crossing {
    /// The last value is at or beyond the threshold already.
    Already,
    /// The fit crosses at `eta_ms`; with the slope's uncertainty, not
    /// before `low_ms`, and not after `high_ms` (None: it may never).
    At {
        eta_ms: i64,
        low_ms: i64,
        high_ms: Option<i64>,
    },
    /// The trend is flat or goes away from the threshold.
    Never,
}

fn x_of(kind: FitKind, origin_ms: i64, t_ms: i64) -> f64 {
    let days = (t_ms - origin_ms) as f64 / DAY_MS;
    if kind.log_x() {
        (days + 1.0).ln()
    } else {
        days
    }
}

fn t_of(kind: FitKind, origin_ms: i64, x: f64) -> Option<i64> {
    let days = if kind.log_x() { x.exp() - 1.0 } else { x };
    let ms = origin_ms as f64 + days * DAY_MS;
    (ms.is_finite() && ms.abs() < 8.0e15).then_some(ms as i64)
}

/// Fits `points` (time ms, value; any order, distinct times) with `kind`.
pub fn fit(kind: FitKind, points: &[(i64, f64)]) -> Result<Fit, FitError> {
    if points.len() < 3 {
        return Err(FitError::TooFewPoints(points.len()));
    }
    if points.iter().any(|(_, v)| !v.is_finite()) {
        return Err(FitError::NotFinite);
    }
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|(t, _)| *t);
    let (origin_ms, last_ms) = (sorted[0].0, sorted[sorted.len() - 1].0);
    if last_ms - origin_ms < 1_000 {
        return Err(FitError::NoSpan((last_ms - origin_ms) as f64 / 1000.0));
    }
    if kind.log_y()
        && let Some((_, v)) = sorted.iter().find(|(_, v)| *v <= 0.0)
    {
        return Err(FitError::NotPositive(kind.as_str(), *v));
    }
    let xy: Vec<(f64, f64)> = sorted
        .iter()
        .map(|(t, v)| {
            (
                x_of(kind, origin_ms, *t),
                if kind.log_y() { v.ln() } else { *v },
            )
        })
        .collect();
    let n = xy.len() as f64;
    let mean_x = xy.iter().map(|(x, _)| x).sum::<f64>() / n;
    let mean_y = xy.iter().map(|(_, y)| y).sum::<f64>() / n;
    let sxx: f64 = xy.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    let sxy: f64 = xy.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let b = sxy / sxx;
    let intercept = mean_y - b * mean_x;
    let transformed_res: f64 = xy
        .iter()
        .map(|(x, y)| (y - (intercept + b * x)).powi(2))
        .sum();
    let slope_se = (transformed_res / (n - 2.0) / sxx).sqrt();
    let a = if kind.log_y() {
        intercept.exp()
    } else {
        intercept
    };
    let mut f = Fit {
        kind,
        a,
        b,
        r_squared: 0.0,
        n: sorted.len(),
        origin_ms,
        last_ms,
        last_value: sorted[sorted.len() - 1].1,
        slope_se,
        mean_x,
        mean_y,
    };
    let mean_v = sorted.iter().map(|(_, v)| v).sum::<f64>() / n;
    let ss_tot: f64 = sorted.iter().map(|(_, v)| (v - mean_v).powi(2)).sum();
    let ss_res: f64 = sorted
        .iter()
        .map(|(t, v)| (v - f.predict(*t)).powi(2))
        .sum();
    // A flat series fitted flat is a perfect fit (and never crosses).
    f.r_squared = if ss_tot <= f64::EPSILON * mean_v.abs().max(1.0) {
        if ss_res <= f64::EPSILON * mean_v.abs().max(1.0) * n {
            1.0
        } else {
            0.0
        }
    } else {
        1.0 - ss_res / ss_tot
    };
    Ok(f)
}

impl Fit {
    /// The fitted value at `t_ms`.
    pub fn predict(&self, t_ms: i64) -> f64 {
        let x = x_of(self.kind, self.origin_ms, t_ms);
        match self.kind {
            FitKind::Linear | FitKind::Logarithmic => self.a + self.b * x,
            FitKind::Exponential | FitKind::Power => self.a * (self.b * x).exp(),
        }
    }

    /// The trend per day at the last point (the derivative of the fit).
    pub fn slope_per_day(&self) -> f64 {
        let x = x_of(self.kind, self.origin_ms, self.last_ms);
        let days = (self.last_ms - self.origin_ms) as f64 / DAY_MS;
        match self.kind {
            FitKind::Linear => self.b,
            FitKind::Exponential => self.b * self.a * (self.b * x).exp(),
            FitKind::Logarithmic => self.b / (days + 1.0),
            FitKind::Power => self.b * self.predict(self.last_ms) / (days + 1.0),
        }
    }

    /// When the fit reaches `threshold`: from below for an upper limit
    /// (usage reaching its maximum), from above for a lower one (free
    /// space reaching zero).
    pub fn crossing(&self, threshold: f64, limit: Limit) -> Crossing {
        let rising = limit == Limit::Upper;
        let beyond = if rising {
            self.last_value >= threshold
        } else {
            self.last_value <= threshold
        };
        if beyond {
            return Crossing::Already;
        }
        let y = if self.kind.log_y() {
            if threshold <= 0.0 {
                // e^(…) never reaches zero or below.
                return Crossing::Never;
            }
            threshold.ln()
        } else {
            threshold
        };
        let towards = |b: f64| if rising { b > 0.0 } else { b < 0.0 };
        let intercept = self.mean_y - self.b * self.mean_x;
        if !towards(self.b) {
            return Crossing::Never;
        }
        let x_now = x_of(self.kind, self.origin_ms, self.last_ms);
        let x_at = |b: f64| self.mean_x + (y - self.mean_y) / b;
        let Some(eta) = t_of(self.kind, self.origin_ms, (y - intercept) / self.b) else {
            return Crossing::Never;
        };
        // The fitted curve may already be past the threshold although the
        // last reading is not: then it crosses now.
        let eta = eta.max(self.last_ms);
        let steep = self.b + if rising { 1.0 } else { -1.0 } * Z95 * self.slope_se;
        let shallow = self.b - if rising { 1.0 } else { -1.0 } * Z95 * self.slope_se;
        let low = t_of(self.kind, self.origin_ms, x_at(steep).max(x_now))
            .unwrap_or(self.last_ms)
            .min(eta);
        let high = towards(shallow)
            .then(|| t_of(self.kind, self.origin_ms, x_at(shallow)))
            .flatten()
            .map(|h| h.max(eta));
        Crossing::At {
            eta_ms: eta,
            low_ms: low,
            high_ms: high,
        }
    }
}

/// A counter's readings made monotonic: after a reset (a drop) the
/// readings continue from where they were, so the fit sees the growth,
/// not the restart.
pub fn undo_resets(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|(t, _)| *t);
    let mut offset = 0.0;
    let mut prev: Option<f64> = None;
    sorted
        .into_iter()
        .map(|(t, v)| {
            if let Some(p) = prev
                && v < p
            {
                offset += p;
            }
            prev = Some(v);
            (t, v + offset)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const T0: i64 = 1_790_000_000_000;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn an_exact_line_fits_with_r2_one_and_crosses_where_it_must() {
        // 2 % a day from 50 %: 100 % in 25 days.
        let pts: Vec<(i64, f64)> = (0..=48)
            .map(|i| (T0 + i * 12 * H, 50.0 + 2.0 * (i as f64 / 2.0)))
            .collect();
        let f = fit(FitKind::Linear, &pts).unwrap();
        assert!(close(f.b, 2.0, 1e-9) && close(f.a, 50.0, 1e-9), "{f:?}");
        assert!(close(f.r_squared, 1.0, 1e-12));
        assert!(close(f.slope_per_day(), 2.0, 1e-9));
        match f.crossing(100.0, Limit::Upper) {
            Crossing::At {
                eta_ms,
                low_ms,
                high_ms,
            } => {
                assert!((eta_ms - (T0 + 25 * 24 * H)).abs() < 1_000, "{eta_ms}");
                // No scatter: the interval is the point.
                assert!((low_ms - eta_ms).abs() < 1_000);
                assert!((high_ms.unwrap() - eta_ms).abs() < 1_000);
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            f.crossing(60.0, Limit::Upper),
            Crossing::Already,
            "passed already"
        );
        assert_eq!(
            f.crossing(10.0, Limit::Lower),
            Crossing::Never,
            "going the other way"
        );
        // Free space falling 2 a day from 100 reaches 10 on day 45.
        let free: Vec<(i64, f64)> = pts.iter().map(|(t, v)| (*t, 150.0 - v)).collect();
        let g = fit(FitKind::Linear, &free).unwrap();
        match g.crossing(10.0, Limit::Lower) {
            Crossing::At { eta_ms, .. } => {
                assert!((eta_ms - (T0 + 45 * 24 * H)).abs() < 1_000, "{eta_ms}")
            }
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn a_flat_series_never_crosses_and_says_it_fits() {
        let pts: Vec<(i64, f64)> = (0..10).map(|i| (T0 + i * H, 42.0)).collect();
        let f = fit(FitKind::Linear, &pts).unwrap();
        assert_eq!(f.b, 0.0);
        assert_eq!(f.r_squared, 1.0);
        assert_eq!(f.crossing(90.0, Limit::Upper), Crossing::Never);
    }

    #[test]
    fn an_exponential_series_is_fitted_exactly_by_the_exponential_fit() {
        // Doubling every 10 days from 1 GB: 64 GB on day 60.
        let k = std::f64::consts::LN_2 / 10.0;
        let pts: Vec<(i64, f64)> = (0..=30)
            .map(|d| (T0 + d * 24 * H, (k * d as f64).exp()))
            .collect();
        let f = fit(FitKind::Exponential, &pts).unwrap();
        assert!(close(f.a, 1.0, 1e-9) && close(f.b, k, 1e-9), "{f:?}");
        assert!(close(f.r_squared, 1.0, 1e-9));
        match f.crossing(64.0, Limit::Upper) {
            Crossing::At { eta_ms, .. } => {
                assert!((eta_ms - (T0 + 60 * 24 * H)).abs() < 60_000, "{eta_ms}")
            }
            c => panic!("{c:?}"),
        }
        let line = fit(FitKind::Linear, &pts).unwrap();
        assert!(line.r_squared < f.r_squared, "a line fits it worse");
    }

    #[test]
    fn fits_that_cannot_apply_say_why() {
        let pts = [(T0, -1.0), (T0 + H, 2.0), (T0 + 2 * H, 3.0)];
        assert_eq!(
            fit(FitKind::Exponential, &pts).unwrap_err().to_string(),
            "the exponential fit needs values above zero; this series has -1"
        );
        assert_eq!(
            fit(FitKind::Linear, &pts[..2]).unwrap_err(),
            FitError::TooFewPoints(2)
        );
        let same_time = [(T0, 1.0), (T0 + 10, 2.0), (T0 + 20, 3.0)];
        assert!(matches!(
            fit(FitKind::Linear, &same_time),
            Err(FitError::NoSpan(_))
        ));
        assert_eq!(
            fit(
                FitKind::Linear,
                &[(T0, 1.0), (T0 + H, f64::NAN), (T0 + 2 * H, 1.0)]
            ),
            Err(FitError::NotFinite)
        );
        assert!(
            FitKind::parse("cubic")
                .unwrap_err()
                .contains("linear, exponential")
        );
    }

    /// Series with scatter and gaps, and their coefficients computed
    /// independently (`fixtures/make_fits.py`, Python's
    /// `statistics.linear_regression`).
    #[test]
    fn fits_match_the_independently_computed_fixtures() {
        let cases: serde_json::Value =
            serde_json::from_str(include_str!("fixtures/fits.json")).unwrap();
        for case in cases.as_array().unwrap() {
            let kind = FitKind::parse(case["kind"].as_str().unwrap()).unwrap();
            let pts: Vec<(i64, f64)> = case["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
                .collect();
            let f = fit(kind, &pts).unwrap();
            let want = |k: &str| case[k].as_f64().unwrap();
            assert!(
                close(f.a, want("a"), 1e-9),
                "{kind:?} a {} vs {}",
                f.a,
                want("a")
            );
            assert!(
                close(f.b, want("b"), 1e-9),
                "{kind:?} b {} vs {}",
                f.b,
                want("b")
            );
            assert!(
                close(f.r_squared, want("r_squared"), 1e-9),
                "{kind:?} R² {} vs {}",
                f.r_squared,
                want("r_squared")
            );
            let eta = case["eta_ms"].as_i64().unwrap();
            match f.crossing(want("threshold"), Limit::Upper) {
                Crossing::At {
                    eta_ms,
                    low_ms,
                    high_ms,
                } => {
                    assert!(
                        (eta_ms - eta).abs() <= 1_000,
                        "{kind:?} eta {eta_ms} vs {eta}"
                    );
                    assert!(
                        low_ms < eta_ms && high_ms.unwrap() > eta_ms,
                        "{kind:?}: an interval around it"
                    );
                }
                c => panic!("{kind:?}: {c:?}"),
            }
        }
    }

    #[test]
    fn a_counter_reset_is_undone_before_fitting() {
        // 10 a day, reset to 0 on day 5, a gap on days 7 and 8.
        let raw: Vec<(i64, f64)> = (0..12)
            .filter(|d| *d != 7 && *d != 8)
            .map(|d| {
                let v = if d < 5 {
                    10.0 * d as f64
                } else {
                    10.0 * (d - 5) as f64
                };
                (T0 + d * 24 * H, v)
            })
            .collect();
        let fixed = undo_resets(&raw);
        let f = fit(FitKind::Linear, &fixed).unwrap();
        // After the reset the series continues from 40 (day 4's reading):
        // day 5 reads 0 + 40, so the increase of that one day is lost (as
        // with Prometheus' increase()): 100 over 11 days ≈ 8.8 a day.
        assert!(f.b > 8.5 && f.b < 10.0, "{f:?}");
        assert!(f.r_squared > 0.98, "{f:?}");
        let naive = fit(FitKind::Linear, &raw).unwrap();
        assert!(
            naive.r_squared < 0.7 && naive.b < 6.0,
            "the reset ruins a naive fit: {naive:?}"
        );
    }
}
