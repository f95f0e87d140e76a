//! Report runs, recorded so that a report can be reproduced and a client's dispute answered
//! from the same numbers: `<data_dir>/reports/runs.jsonl`, one fsynced line per report made
//! (client, month, data range, the contract version and digest it read, the SHA-256 of the
//! HTML), and the HTML itself kept beside it as `<client>-<month>-<digest>.html`.

use super::{MonthReport, ReportError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of `runs.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRun {
    pub client: String,
    pub month: String,
    pub made_at_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub policy_version: u64,
    pub policy_digest: String,
    /// `sha256:…` of the HTML.
    pub output_digest: String,
    /// Where the copy of the HTML is kept.
    pub kept_as: PathBuf,
    /// Whether it was mailed to the client.
    #[serde(default)]
    pub sent: bool,
}

/// Records a run of `report` whose page is `html`, made at `made_at_ms` (and mailed, if
/// `sent`).
pub fn record(
    data_dir: &Path,
    report: &MonthReport,
    html: &str,
    made_at_ms: i64,
    sent: bool,
) -> Result<ReportRun, ReportError> {
    let dir = data_dir.join("reports");
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(&dir).map_err(io("creating the folder", &dir))?;
    let output_digest = crate::policy::version::digest_of(html);
    let short = output_digest.trim_start_matches("sha256:");
    let kept_as = dir.join(format!(
        "{}-{}-{}.html",
        report.client,
        report.month,
        &short[..16.min(short.len())]
    ));
    super::write_page(&kept_as, html)?;
    let run = ReportRun {
        client: report.client.clone(),
        month: report.month.to_string(),
        made_at_ms,
        start_ms: report.start_ms,
        end_ms: report.end_ms,
        policy_version: report.policy_version,
        policy_digest: report.policy_digest.clone(),
        output_digest,
        kept_as,
        sent,
    };
    let path = dir.join("runs.jsonl");
    let mut line = serde_json::to_vec(&run).expect("report runs serialise to JSON");
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io("opening", &path))?;
    file.write_all(&line).map_err(io("appending to", &path))?;
    file.sync_data().map_err(io("syncing", &path))?;
    Ok(run)
}

/// Like [`record`], unless a run of the same client and month already has this very page
/// (the console showing a report again adds nothing to dispute); returns the run either way.
pub fn record_once(
    data_dir: &Path,
    report: &MonthReport,
    html: &str,
    made_at_ms: i64,
) -> Result<ReportRun, ReportError> {
    let digest = crate::policy::version::digest_of(html);
    let month = report.month.to_string();
    if let Some(run) = read(data_dir)?.into_iter().find(|run| {
        run.client == report.client && run.month == month && run.output_digest == digest
    }) {
        return Ok(run);
    }
    record(data_dir, report, html, made_at_ms, false)
}

/// Every recorded run, oldest first.
pub fn read(data_dir: &Path) -> Result<Vec<ReportRun>, ReportError> {
    let path = data_dir.join("reports").join("runs.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ReportError::Io {
                action: "reading",
                path,
                source,
            })
        }
    };
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}
