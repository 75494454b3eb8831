//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz) and the stable fuzz test
//! (`tests/fuzz_parsers.rs`): arbitrary bytes through the parsers a matrix from a pull request,
//! or a results file from another job, goes through. Any outcome is fine but a panic or a hang.

use std::path::{Path, PathBuf};

/// A matrix file's bytes: parsed, checked and expanded to cells.
pub fn matrix(data: &[u8]) {
    let Ok(text) = crate::config::text_of(Path::new("fuzz.toml"), data.to_vec()) else {
        return;
    };
    if let Ok(m) = crate::config::matrix_file::load_matrix_text(PathBuf::from("fuzz.toml"), text) {
        let _ = crate::matrix::expand(&m);
    }
}

/// A scenario file's bytes: parsed and resolved to a scenario.
pub fn scenario(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(params) = crate::config::parse_toml_text::<crate::config::ScenarioParams>(
        Path::new("fuzz.toml"),
        text,
    ) {
        let _ = crate::scenario::ScenarioConfig::resolve(&params);
    }
}

/// A `results.jsonl`'s bytes, read as `report`, `compare` and `merge` read it.
pub fn results(data: &[u8]) {
    let _ = crate::results::store::parse_results(Path::new("results.jsonl"), data);
}
