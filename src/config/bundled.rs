//! The scenario files shipped in `scenarios/`, compiled into the binary (like the Django app),
//! so a matrix kept anywhere can `use = "login-flow"` with an installed cachegate. A `use` that
//! is a path (it has a `/` or an extension) still names a file.

use std::path::{Path, PathBuf};

const SCENARIOS: &[(&str, &str)] = &[
    ("cache-ops", include_str!("../../scenarios/cache-ops.toml")),
    (
        "durability",
        include_str!("../../scenarios/durability.toml"),
    ),
    ("eviction", include_str!("../../scenarios/eviction.toml")),
    (
        "login-flow",
        include_str!("../../scenarios/login-flow.toml"),
    ),
    ("outage", include_str!("../../scenarios/outage.toml")),
    (
        "server-upgrade",
        include_str!("../../scenarios/server-upgrade.toml"),
    ),
    (
        "session-persistence",
        include_str!("../../scenarios/session-persistence.toml"),
    ),
];

/// The bundled-scenario name a `use` value asks for, if it is a bare name rather than a path.
pub fn as_name(use_value: &Path) -> Option<&str> {
    let name = use_value.to_str()?;
    let bare = !name.is_empty() && !name.contains(['/', '\\', '.']);
    bare.then_some(name)
}

/// A bundled scenario's text.
pub fn scenario(name: &str) -> Option<&'static str> {
    SCENARIOS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Every bundled name, for messages.
pub fn names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|(n, _)| *n).collect()
}

/// Where errors in a bundled scenario are placed (it has no file on disk).
pub fn location(name: &str) -> PathBuf {
    PathBuf::from(format!("<bundled>/scenarios/{name}.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in scenarios/ is bundled, so none is usable only from the source tree.
    #[test]
    fn every_scenario_file_is_bundled() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".toml").map(str::to_string)
            })
            .collect();
        files.sort();
        assert_eq!(files, names());
        assert_eq!(as_name(Path::new("login-flow")), Some("login-flow"));
        assert_eq!(as_name(Path::new("scenarios/login-flow.toml")), None);
        assert_eq!(as_name(Path::new("login-flow.toml")), None);
    }
}
