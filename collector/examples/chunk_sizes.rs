//! Bytes per sample of the chunk codec against Gorilla, per metric family, on an
//! OpenMetrics file such as `gen_openmetrics.py` writes. Each series is cut into chunks of
//! 720 samples (two hours at 10 s); every chunk is encoded with `store::chunk` and with the
//! `gorilla` baseline at the same length, and — for what Prometheus itself stores — with
//! Gorilla in Prometheus' 120-sample chunks plus the framing of its chunk files. Every chunk
//! is decoded again and compared bit for bit, so a run is also a round-trip test at scale.
//!
//! ```text
//! cargo run --release -p vigil-collector --example chunk_sizes -- metrics.om [--samples-per-chunk 720]
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vigil_collector::openmetrics;
use vigil_collector::store::chunk::{self, gorilla};
use vigil_proto::model::Sample;

const DEFAULT_SAMPLES_PER_CHUNK: usize = 720;

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    n_series: usize,
    n_samples: usize,
    n_chunks: usize,
    chunk_bytes: usize,
    gorilla_bytes: usize,
    prometheus_bytes: usize,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.n_series += other.n_series;
        self.n_samples += other.n_samples;
        self.n_chunks += other.n_chunks;
        self.chunk_bytes += other.chunk_bytes;
        self.gorilla_bytes += other.gorilla_bytes;
        self.prometheus_bytes += other.prometheus_bytes;
    }

    fn per_sample(&self, bytes: usize) -> f64 {
        bytes as f64 / self.n_samples.max(1) as f64
    }
}

#[derive(Debug, Default)]
struct Timings {
    encode: Duration,
    decode: Duration,
    gorilla_encode: Duration,
    gorilla_decode: Duration,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chunk_sizes: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let mut path = None;
    let mut samples_per_chunk = DEFAULT_SAMPLES_PER_CHUNK;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--samples-per-chunk" => {
                samples_per_chunk = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--samples-per-chunk needs a positive number")?;
            }
            _ if path.is_none() => path = Some(PathBuf::from(arg)),
            _ => {
                return Err(format!(
                "unexpected argument '{arg}'; usage: chunk_sizes FILE.om [--samples-per-chunk N]"
            )
                .into())
            }
        }
    }
    let path = path.ok_or("usage: chunk_sizes FILE.om [--samples-per-chunk N]")?;

    let mut reader = openmetrics::open(&path)?;
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let mut timings = Timings::default();
    let mut family = String::new();
    let mut series: Vec<Sample> = Vec::new();
    while let Some(sample) = reader.next_sample()? {
        if !sample.same_series_as_previous {
            if !series.is_empty() {
                let tally = tallies.entry(family.clone()).or_default();
                measure_series(&series, samples_per_chunk, tally, &mut timings)?;
                series.clear();
            }
            sample.name.clone_into(&mut family);
        }
        series.push(Sample {
            timestamp_ms: sample.timestamp_ms,
            value: sample.value,
        });
    }
    if !series.is_empty() {
        let tally = tallies.entry(family).or_default();
        measure_series(&series, samples_per_chunk, tally, &mut timings)?;
    }
    print_table(&tallies, samples_per_chunk, &timings);
    Ok(())
}

fn measure_series(
    samples: &[Sample],
    samples_per_chunk: usize,
    tally: &mut Tally,
    timings: &mut Timings,
) -> Result<(), Box<dyn Error>> {
    tally.n_series += 1;
    tally.n_samples += samples.len();
    for piece in samples.chunks(samples_per_chunk) {
        let started = Instant::now();
        let bytes = chunk::encode(piece)?;
        timings.encode += started.elapsed();
        let started = Instant::now();
        let decoded = chunk::decode(&bytes)?;
        timings.decode += started.elapsed();
        if !same_bits(&decoded, piece) {
            return Err(format!(
                "a chunk of {} samples from {} ms did not decode to its samples",
                piece.len(),
                piece[0].timestamp_ms
            )
            .into());
        }

        let started = Instant::now();
        let gorilla_bytes = gorilla::encode(piece);
        timings.gorilla_encode += started.elapsed();
        let started = Instant::now();
        let gorilla_decoded = gorilla::decode(&gorilla_bytes);
        timings.gorilla_decode += started.elapsed();
        if !gorilla_decoded.is_some_and(|decoded| same_bits(&decoded, piece)) {
            return Err("the gorilla baseline did not decode its own chunk".into());
        }

        tally.n_chunks += 1;
        tally.chunk_bytes += bytes.len();
        tally.gorilla_bytes += gorilla_bytes.len();
        tally.prometheus_bytes += piece
            .chunks(gorilla::PROMETHEUS_SAMPLES_PER_CHUNK)
            .map(|small| gorilla::encode(small).len() + gorilla::PROMETHEUS_CHUNK_FILE_OVERHEAD)
            .sum::<usize>();
    }
    Ok(())
}

fn same_bits(a: &[Sample], b: &[Sample]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            a.timestamp_ms == b.timestamp_ms && a.value.to_bits() == b.value.to_bits()
        })
}

fn print_table(tallies: &BTreeMap<String, Tally>, samples_per_chunk: usize, timings: &Timings) {
    let mut total = Tally::default();
    println!(
        "bytes per sample, chunks of {samples_per_chunk} samples; 'prometheus' is Gorilla in \
         {}-sample chunks with chunk-file framing",
        gorilla::PROMETHEUS_SAMPLES_PER_CHUNK
    );
    println!(
        "{:<34} {:>7} {:>10} {:>8} {:>8} {:>8} {:>11}",
        "family", "series", "samples", "chunk", "gorilla", "ratio", "prometheus"
    );
    for (family, tally) in tallies {
        print_row(family, tally);
        total.add(tally);
    }
    print_row("all", &total);
    let rate = |duration: Duration| total.n_samples as f64 / duration.as_secs_f64().max(1e-9) / 1e6;
    println!(
        "encode {:.1} M samples/s (gorilla {:.1}), decode {:.1} M samples/s (gorilla {:.1})",
        rate(timings.encode),
        rate(timings.gorilla_encode),
        rate(timings.decode),
        rate(timings.gorilla_decode),
    );
}

fn print_row(name: &str, tally: &Tally) {
    println!(
        "{:<34} {:>7} {:>10} {:>8.3} {:>8.3} {:>8.3} {:>11.3}",
        name,
        tally.n_series,
        tally.n_samples,
        tally.per_sample(tally.chunk_bytes),
        tally.per_sample(tally.gorilla_bytes),
        tally.chunk_bytes as f64 / tally.gorilla_bytes.max(1) as f64,
        tally.per_sample(tally.prometheus_bytes),
    );
}
