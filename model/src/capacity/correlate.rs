//! Volume vs KPI: the regression of a KPI (a latency, a CPU share) on the
//! transaction volume over aligned buckets, how strongly they go together,
//! the elasticity ("+1 % volume → +y % KPI") and the KPI predicted at a
//! grown volume (docs/capacity.md, "Volume vs KPI").

use super::fit::FitError;

/// The shape of the KPI's dependence on volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeFit {
    /// kpi = a + b·volume.
    Linear,
    /// kpi = a·volume^b (b is the elasticity).
    Power,
}

impl VolumeFit {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeFit::Linear => "linear",
            VolumeFit::Power => "power",
        }
    }

    pub fn parse(text: &str) -> Result<VolumeFit, String> {
        match text.trim() {
            "linear" => Ok(VolumeFit::Linear),
            "power" => Ok(VolumeFit::Power),
            other => Err(format!("fit: {other:?} is not linear or power")),
        }
    }
}

/// A KPI regressed on volume.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Correlation {
    pub fit: VolumeFit,
    pub a: f64,
    pub b: f64,
    /// Buckets with both figures.
    pub n: usize,
    /// Goodness of the fit on the KPI values.
    pub r_squared: f64,
    /// Pearson's correlation coefficient of volume and KPI.
    pub r: f64,
    /// The volume it is judged at ("today": the latest bucket's).
    pub volume: f64,
}

/// Regresses `pairs` (volume, kpi), judged at `volume_now`.
pub fn correlate(
    fit: VolumeFit,
    pairs: &[(f64, f64)],
    volume_now: f64,
) -> Result<Correlation, FitError> {
    if pairs.len() < 3 {
        return Err(FitError::TooFewPoints(pairs.len()));
    }
    if pairs.iter().any(|(v, k)| !v.is_finite() || !k.is_finite()) {
        return Err(FitError::NotFinite);
    }
    if fit == VolumeFit::Power
        && let Some(bad) = pairs.iter().flat_map(|(v, k)| [*v, *k]).find(|x| *x <= 0.0)
    {
        return Err(FitError::NotPositive("power", bad));
    }
    let t = |x: f64| if fit == VolumeFit::Power { x.ln() } else { x };
    let xy: Vec<(f64, f64)> = pairs.iter().map(|(v, k)| (t(*v), t(*k))).collect();
    let n = xy.len() as f64;
    let mx = xy.iter().map(|p| p.0).sum::<f64>() / n;
    let my = xy.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = xy.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    let sxy: f64 = xy.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    if sxx <= 0.0 {
        return Err(FitError::NoSpan(0.0));
    }
    let b = sxy / sxx;
    let intercept = my - b * mx;
    let a = if fit == VolumeFit::Power {
        intercept.exp()
    } else {
        intercept
    };
    let mut c = Correlation {
        fit,
        a,
        b,
        n: pairs.len(),
        r_squared: 0.0,
        r: 0.0,
        volume: volume_now,
    };
    let (mv, mk) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let ss_tot: f64 = pairs.iter().map(|(_, k)| (k - mk).powi(2)).sum();
    let ss_res: f64 = pairs.iter().map(|(v, k)| (k - c.predict(*v)).powi(2)).sum();
    c.r_squared = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        1.0
    };
    let svv: f64 = pairs.iter().map(|(v, _)| (v - mv).powi(2)).sum();
    let svk: f64 = pairs.iter().map(|(v, k)| (v - mv) * (k - mk)).sum();
    c.r = if ss_tot > 0.0 {
        svk / (svv * ss_tot).sqrt()
    } else {
        0.0
    };
    Ok(c)
}

impl Correlation {
    /// The KPI the fit predicts at `volume`.
    pub fn predict(&self, volume: f64) -> f64 {
        match self.fit {
            VolumeFit::Linear => self.a + self.b * volume,
            VolumeFit::Power => self.a * volume.powf(self.b),
        }
    }

    /// The KPI at today's volume, by the fit.
    pub fn kpi_now(&self) -> f64 {
        self.predict(self.volume)
    }

    /// Percent change of the KPI for +1 % volume, at today's volume.
    pub fn elasticity_percent(&self) -> f64 {
        (self.predict(self.volume * 1.01) / self.kpi_now() - 1.0) * 100.0
    }

    /// The KPI predicted when volume grows by `growth` (0.5 = +50 %).
    pub fn what_if(&self, growth: f64) -> f64 {
        self.predict(self.volume * (1.0 + growth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of docs/capacity.md: price generation takes
    /// 1 ms at today's 1000 prices/min; over the month it went from 0.4 ms
    /// at 900/min, 6 µs per extra price a minute. At +50 % volume the fit
    /// predicts 4 ms: within a 5 ms SLA.
    #[test]
    fn the_worked_example_of_the_docs() {
        let pairs: Vec<(f64, f64)> = (0..=20)
            .map(|i| {
                let v = 900.0 + 5.0 * i as f64;
                (v, 1.0 + 0.006 * (v - 1000.0))
            })
            .collect();
        let c = correlate(VolumeFit::Linear, &pairs, 1000.0).unwrap();
        assert!((c.kpi_now() - 1.0).abs() < 1e-9);
        assert!((c.what_if(0.5) - 4.0).abs() < 1e-9, "{}", c.what_if(0.5));
        assert!(c.what_if(0.5) <= 5.0, "within the 5 ms SLA");
        assert!((c.elasticity_percent() - 6.0).abs() < 1e-9, "+1 % → +6 %");
        assert!((c.r_squared - 1.0).abs() < 1e-12 && (c.r - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_power_law_gives_its_exponent_as_the_elasticity() {
        let pairs: Vec<(f64, f64)> = (1..=30)
            .map(|i| {
                let v = 100.0 * i as f64;
                (v, 0.002 * v.powf(1.5))
            })
            .collect();
        let c = correlate(VolumeFit::Power, &pairs, 3000.0).unwrap();
        assert!((c.b - 1.5).abs() < 1e-9);
        assert!((c.elasticity_percent() - (1.01f64.powf(1.5) - 1.0) * 100.0).abs() < 1e-9);
    }

    #[test]
    fn unrelated_or_unfit_data_says_so() {
        let noise: Vec<(f64, f64)> = (0..40)
            .map(|i| (i as f64, ((i * 7919) % 13) as f64))
            .collect();
        let c = correlate(VolumeFit::Linear, &noise, 39.0).unwrap();
        assert!(c.r_squared < 0.2 && c.r.abs() < 0.5, "{c:?}");
        assert_eq!(
            correlate(VolumeFit::Linear, &noise[..2], 1.0).unwrap_err(),
            FitError::TooFewPoints(2)
        );
        let flat_volume = [(5.0, 1.0), (5.0, 2.0), (5.0, 3.0)];
        assert!(correlate(VolumeFit::Linear, &flat_volume, 5.0).is_err());
        let zero = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)];
        assert!(matches!(
            correlate(VolumeFit::Power, &zero, 1.0),
            Err(FitError::NotPositive("power", _))
        ));
    }
}
