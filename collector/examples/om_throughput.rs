//! Measures how fast the OpenMetrics reader parses a file: samples per second, single
//! threaded, through the iterator of owned samples (what `import` and `backtest` see) or,
//! with `--borrowed`, through `next_sample`, which copies no names or labels.
//!
//! ```text
//! python3 shared/tools/gen_openmetrics.py --hosts 20 --hours 24 --out /tmp/m.om
//! cargo run --release -p vigil-collector --example om_throughput -- /tmp/m.om [--borrowed]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use vigil_collector::openmetrics;

fn main() -> ExitCode {
    let mut path = None;
    let mut borrowed = false;
    for argument in std::env::args().skip(1) {
        match argument.as_str() {
            "--borrowed" => borrowed = true,
            _ if path.is_none() => path = Some(PathBuf::from(argument)),
            _ => {
                eprintln!("usage: om_throughput FILE.om[.gz] [--borrowed]");
                return ExitCode::FAILURE;
            }
        }
    }
    let Some(path) = path else {
        eprintln!("usage: om_throughput FILE.om[.gz] [--borrowed]");
        return ExitCode::FAILURE;
    };

    let started = Instant::now();
    let mut reader = match openmetrics::open(&path) {
        Ok(reader) => reader,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let mut n_samples: u64 = 0;
    let mut n_series_runs: u64 = 0;
    // Summing the values keeps the optimiser from dropping the parse.
    let mut checksum = 0.0_f64;
    let outcome = if borrowed {
        loop {
            match reader.next_sample() {
                Ok(Some(sample)) => {
                    n_samples += 1;
                    n_series_runs += u64::from(!sample.same_series_as_previous);
                    checksum += sample.value;
                }
                Ok(None) => break Ok(()),
                Err(err) => break Err(err),
            }
        }
    } else {
        let mut outcome = Ok(());
        for item in reader.by_ref() {
            match item {
                Ok(sample) => {
                    n_samples += 1;
                    checksum += sample.value;
                }
                Err(err) => {
                    outcome = Err(err);
                    break;
                }
            }
        }
        outcome
    };
    if let Err(err) = outcome {
        eprintln!("{err}");
        return ExitCode::FAILURE;
    }
    let seconds = started.elapsed().as_secs_f64();
    let megabytes = reader.bytes_read() as f64 / 1e6;
    println!(
        "{}: {n_samples} samples, {} lines, {megabytes:.0} MB of text in {seconds:.2} s \
         ({}): {:.2} M samples/s, {:.0} MB/s (checksum {checksum:e}{})",
        path.display(),
        reader.line_number(),
        if borrowed {
            "borrowed"
        } else {
            "owned samples"
        },
        n_samples as f64 / seconds / 1e6,
        megabytes / seconds,
        if borrowed {
            format!(", {n_series_runs} series runs")
        } else {
            String::new()
        },
    );
    ExitCode::SUCCESS
}
