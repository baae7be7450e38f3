//! Percentiles of timed samples, and a plain-text table to print them in.

use std::time::Duration;

/// Sorted samples in milliseconds.
#[derive(Debug, Clone)]
pub struct Stats {
    ms: Vec<f64>,
}

impl Stats {
    pub fn new(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(|a, b| a.partial_cmp(b).expect("durations are never NaN"));
        Stats { ms }
    }

    pub fn len(&self) -> usize {
        self.ms.len()
    }

    /// Nearest-rank percentile (`p` in 0..=100).
    pub fn pct(&self, p: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.ms.len() as f64).ceil() as usize;
        self.ms[rank.clamp(1, self.ms.len()) - 1]
    }

    pub fn median(&self) -> f64 {
        self.pct(50.0)
    }

    pub fn mean(&self) -> f64 {
        self.ms.iter().sum::<f64>() / self.ms.len() as f64
    }

    pub fn min(&self) -> f64 {
        self.ms.first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.ms.last().copied().unwrap_or(f64::NAN)
    }
}

/// Milliseconds with a precision that suits their size.
pub fn ms(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x < 1.0 {
        format!("{x:.3}")
    } else if x < 100.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.0}")
    }
}

/// A plain-text table: first column left-aligned, the others right-aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: vec![],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let cols = self.header.len();
        let mut width = vec![0; cols];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |r: &Vec<String>| {
            let mut s = String::new();
            for (i, c) in r.iter().enumerate().take(cols) {
                if i == 0 {
                    s.push_str(&format!("{c:<w$}", w = width[0]));
                } else {
                    s.push_str(&format!("  {c:>w$}", w = width[i]));
                }
            }
            println!("{}", s.trim_end());
        };
        line(&self.header);
        println!(
            "{}",
            "-".repeat(width.iter().sum::<usize>() + 2 * (cols - 1))
        );
        for r in &self.rows {
            line(r);
        }
    }
}

/// KiB as MiB, two decimals.
pub fn mib(kib: f64) -> String {
    format!("{:.2}", kib / 1024.0)
}
