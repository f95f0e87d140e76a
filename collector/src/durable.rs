//! Small files that must be whole after a crash: written to a temporary file, synced, renamed
//! over the old one, and the folder synced so that the rename itself survives.

use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// What failed, for the caller's error: the action ("writing", "syncing", "renaming") and
/// the I/O error.
pub type Failure = (&'static str, std::io::Error);

/// Writes `value` as pretty JSON to `path`, atomically and durably.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Failure> {
    let bytes = serde_json::to_vec_pretty(value).expect("records serialise to JSON");
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary).map_err(|e| ("writing", e))?;
    file.write_all(&bytes).map_err(|e| ("writing", e))?;
    file.sync_all().map_err(|e| ("syncing", e))?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(|e| ("renaming", e))?;
    if let Some(parent) = path.parent() {
        if let Ok(dir) = std::fs::File::open(parent) {
            dir.sync_all().map_err(|e| ("syncing the folder of", e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_json(&path, &vec![1, 2, 3]).unwrap();
        write_json(&path, &vec![4]).unwrap();
        let read: Vec<i32> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(read, [4]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
