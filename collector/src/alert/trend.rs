//! Robust statistics the rules share: the Theil–Sen slope with Sen's confidence interval,
//! medians and the median absolute deviation. Pure functions over slices.
//!
//! Theil–Sen takes the median of the slopes between every pair of points, so a step, a spike
//! or a gap moves it only when it touches more than half the pairs; least squares, as in
//! Prometheus' `predict_linear`, follows every outlier.

/// A slope and its confidence interval (about 90 %), in value units per x unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slope {
    pub slope: f64,
    pub low: f64,
    pub high: f64,
    pub n_points: usize,
}

/// Two-sided z for the interval: 1.645 leaves 5 % out on each side.
const Z_90: f64 = 1.645;

/// Theil–Sen slope of `points` (x, y), with Sen's interval from Kendall's variance. `scratch`
/// is reused between calls to avoid allocating the pair slopes each time. `None` for fewer
/// than three points or when every x is equal.
pub fn theil_sen(points: &[(f64, f64)], scratch: &mut Vec<f64>) -> Option<Slope> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    scratch.clear();
    for (i, &(xi, yi)) in points.iter().enumerate() {
        for &(xj, yj) in &points[i + 1..] {
            let dx = xj - xi;
            if dx != 0.0 {
                scratch.push((yj - yi) / dx);
            }
        }
    }
    let n_pairs = scratch.len();
    if n_pairs == 0 {
        return None;
    }
    scratch.sort_unstable_by(f64::total_cmp);
    let slope = median_of_sorted(scratch);
    let n = n as f64;
    let spread = Z_90 * (n * (n - 1.0) * (2.0 * n + 5.0) / 18.0).sqrt();
    let lower_rank = ((n_pairs as f64 - spread) / 2.0).round() as i64 - 1;
    let upper_rank = ((n_pairs as f64 + spread) / 2.0).round() as i64;
    let low = if lower_rank >= 0 {
        scratch[lower_rank as usize]
    } else {
        f64::NEG_INFINITY
    };
    let high = if (upper_rank as usize) < n_pairs {
        scratch[upper_rank as usize]
    } else {
        f64::INFINITY
    };
    Some(Slope {
        slope,
        low: low.min(slope),
        high: high.max(slope),
        n_points: points.len(),
    })
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

/// Median of `values` (reordered in place); `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    Some(median_of_sorted(values))
}

/// Median absolute deviation from the median, scaled by 1.4826 so that it estimates the
/// standard deviation of normal noise; `None` when empty.
pub fn robust_sigma(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    let center = median(&mut sorted)?;
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
    median(&mut deviations).map(|mad| 1.4826 * mad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theil_sen_recovers_a_clean_line() {
        let points: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 3.0 + 0.5 * i as f64)).collect();
        let fit = theil_sen(&points, &mut Vec::new()).unwrap();
        assert!((fit.slope - 0.5).abs() < 1e-12);
        assert!(fit.low <= 0.5 && fit.high >= 0.5);
    }

    #[test]
    fn theil_sen_ignores_a_step_near_the_end_of_the_window() {
        // Flat for 30 points, then a jump of 100 for the last 4: least squares would see a
        // steep slope; the median of pair slopes stays flat.
        let points: Vec<(f64, f64)> = (0..34)
            .map(|i| (i as f64, if i >= 30 { 100.0 } else { 0.0 }))
            .collect();
        let fit = theil_sen(&points, &mut Vec::new()).unwrap();
        assert_eq!(fit.slope, 0.0);
    }

    #[test]
    fn theil_sen_interval_excludes_zero_for_a_clear_trend_and_includes_it_for_noise() {
        let trend: Vec<(f64, f64)> = (0..36)
            .map(|i| (i as f64, i as f64 + if i % 2 == 0 { 0.3 } else { -0.3 }))
            .collect();
        let fit = theil_sen(&trend, &mut Vec::new()).unwrap();
        assert!(fit.low > 0.0, "{fit:?}");
        let noise: Vec<(f64, f64)> = (0..36)
            .map(|i| (i as f64, [0.3, -0.2, 0.1, -0.4, 0.2, 0.0][i % 6]))
            .collect();
        let fit = theil_sen(&noise, &mut Vec::new()).unwrap();
        assert!(fit.low <= 0.0 && fit.high >= 0.0, "{fit:?}");
    }

    #[test]
    fn median_and_robust_sigma_resist_one_outlier() {
        let mut values = vec![1.0, 2.0, 3.0, 4.0, 1000.0];
        assert_eq!(median(&mut values), Some(3.0));
        let sigma = robust_sigma(&[1.0, 2.0, 3.0, 4.0, 1000.0]).unwrap();
        assert!(sigma < 2.0, "{sigma}");
        assert_eq!(median(&mut []), None);
    }
}
