//! `--pdf`: the page printed to PDF by a headless Chromium, where one is installed. The
//! page needs nothing from the network, so Chromium runs with networking off.

use super::ReportError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Chromium binaries looked for on `PATH`, in order; `VIGIL_CHROMIUM` names another.
const CANDIDATES: [&str; 4] = ["chromium", "chromium-browser", "google-chrome", "chrome"];

/// The headless browser to print with, if any.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VIGIL_CHROMIUM").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| CANDIDATES.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Prints the HTML file `page` to `pdf`.
pub fn print(page: &Path, pdf: &Path) -> Result<(), ReportError> {
    let browser = chromium().ok_or_else(|| ReportError::Pdf {
        path: pdf.to_path_buf(),
        detail: "no headless Chromium found (chromium, chromium-browser or google-chrome on \
                 PATH, or VIGIL_CHROMIUM); install chromium or leave out --pdf"
            .to_string(),
    })?;
    let page = std::fs::canonicalize(page).map_err(|source| ReportError::Io {
        action: "finding",
        path: page.to_path_buf(),
        source,
    })?;
    let profile = tempfile::tempdir().map_err(|source| ReportError::Io {
        action: "making a browser profile folder for",
        path: pdf.to_path_buf(),
        source,
    })?;
    let output = Command::new(&browser)
        .arg("--headless")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--no-first-run")
        .arg("--no-pdf-header-footer")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .map_err(|error| ReportError::Pdf {
            path: pdf.to_path_buf(),
            detail: format!("{} could not be started: {error}", browser.display()),
        })?;
    let written = std::fs::metadata(pdf).map(|m| m.len() > 0).unwrap_or(false);
    if !output.status.success() || !written {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ReportError::Pdf {
            path: pdf.to_path_buf(),
            detail: format!(
                "{} exited with {} and wrote no PDF: {}",
                browser.display(),
                output.status,
                stderr.lines().last().unwrap_or("").trim()
            ),
        });
    }
    Ok(())
}
