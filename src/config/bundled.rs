//! The matrices and scenarios shipped in `matrices/` and `scenarios/`, compiled into the binary
//! (like the Django app), so an installed cachegate runs `cachegate run upgrade` and a matrix kept
//! anywhere can `use = "login-flow"`.
//!
//! They form a small read-only tree, `<bundled>/matrices/NAME.toml` and
//! `<bundled>/scenarios/NAME.toml`: errors in a bundled file are placed there, and a bundled
//! matrix's `use = "scenarios/cache-ops.toml"` resolves inside it (never to a file on disk), so a
//! bundled matrix runs the same wherever it is started.

use std::path::{Component, Path, PathBuf};

/// The root of the bundled tree in messages and `LoadedMatrix::path`.
pub const ROOT: &str = "<bundled>";

const MATRICES: &[(&str, &str)] = &[
    ("backends", include_str!("../../matrices/backends.toml")),
    (
        "backends-ops",
        include_str!("../../matrices/backends-ops.toml"),
    ),
    ("nightly", include_str!("../../matrices/nightly.toml")),
    (
        "own-project",
        include_str!("../../matrices/own-project.toml"),
    ),
    (
        "own-project-sessions",
        include_str!("../../matrices/own-project-sessions.toml"),
    ),
    (
        "own-project-tests",
        include_str!("../../matrices/own-project-tests.toml"),
    ),
    (
        "persistence",
        include_str!("../../matrices/persistence.toml"),
    ),
    ("quick", include_str!("../../matrices/quick.toml")),
    (
        "rolling-upgrade",
        include_str!("../../matrices/rolling-upgrade.toml"),
    ),
    (
        "stack-transitions",
        include_str!("../../matrices/stack-transitions.toml"),
    ),
    ("tls-auth", include_str!("../../matrices/tls-auth.toml")),
    (
        "tls-auth-ops",
        include_str!("../../matrices/tls-auth-ops.toml"),
    ),
    ("topologies", include_str!("../../matrices/topologies.toml")),
    (
        "topologies-failover",
        include_str!("../../matrices/topologies-failover.toml"),
    ),
    (
        "topologies-raw",
        include_str!("../../matrices/topologies-raw.toml"),
    ),
    ("upgrade", include_str!("../../matrices/upgrade.toml")),
    (
        "upgrade-paths",
        include_str!("../../matrices/upgrade-paths.toml"),
    ),
];

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
        "rolling-upgrade",
        include_str!("../../scenarios/rolling-upgrade.toml"),
    ),
    (
        "server-upgrade",
        include_str!("../../scenarios/server-upgrade.toml"),
    ),
    (
        "session-persistence",
        include_str!("../../scenarios/session-persistence.toml"),
    ),
];

/// The two kinds of bundled file, each a folder of the bundled tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Matrix,
    Scenario,
}

impl Kind {
    /// The folder it lives in, in the source tree and in the bundled tree.
    pub fn folder(self) -> &'static str {
        match self {
            Kind::Matrix => "matrices",
            Kind::Scenario => "scenarios",
        }
    }

    fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Matrix => MATRICES,
            Kind::Scenario => SCENARIOS,
        }
    }
}

/// The bundled name an argument or a `use` value asks for, if it is a bare name rather than a
/// path: no `/`, no `\` and no `.` (so `quick` is a name, `quick.toml` and `./quick` are files).
pub fn as_name(value: &Path) -> Option<&str> {
    let name = value.to_str()?;
    let bare = !name.is_empty() && !name.contains(['/', '\\', '.']);
    bare.then_some(name)
}

/// A bundled file's text.
pub fn text(kind: Kind, name: &str) -> Option<&'static str> {
    kind.files()
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// A bundled scenario's text.
pub fn scenario(name: &str) -> Option<&'static str> {
    text(Kind::Scenario, name)
}

/// Every bundled name of a kind, sorted.
pub fn names_of(kind: Kind) -> Vec<&'static str> {
    kind.files().iter().map(|(n, _)| *n).collect()
}

/// Every bundled scenario name, for messages.
pub fn names() -> Vec<&'static str> {
    names_of(Kind::Scenario)
}

/// Where a bundled file sits in the bundled tree (errors in it are placed there).
pub fn path_of(kind: Kind, name: &str) -> PathBuf {
    Path::new(ROOT)
        .join(kind.folder())
        .join(format!("{name}.toml"))
}

/// Where errors in a bundled scenario are placed.
pub fn location(name: &str) -> PathBuf {
    path_of(Kind::Scenario, name)
}

/// Is this a path inside the bundled tree (a bundled matrix's own path)?
pub fn is_bundled(path: &Path) -> bool {
    path.starts_with(ROOT)
}

/// The bundled file at a path of the bundled tree, after `..` and `.` are folded away:
/// `<bundled>/matrices/../scenarios/cache-ops.toml` is the bundled `cache-ops` scenario.
pub fn at_path(path: &Path) -> Option<(PathBuf, &'static str)> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                // Never above the root: `<bundled>/..` is outside the tree.
                if parts.len() <= 1 {
                    return None;
                }
                parts.pop();
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    let [root, folder, file] = parts[..] else {
        return None;
    };
    if root != ROOT {
        return None;
    }
    let name = Path::new(file).to_str()?.strip_suffix(".toml")?;
    let kind = [Kind::Matrix, Kind::Scenario]
        .into_iter()
        .find(|k| folder == k.folder())?;
    text(kind, name).map(|t| (path_of(kind, name), t))
}

/// The longest description `description` returns, so a listing stays one line per file.
pub const DESCRIPTION_WIDTH: usize = 100;

/// A file's one-line description: the first sentence of its leading comment, without a leading
/// `NAME:` (scenario files start with their kind), cut at a word to `DESCRIPTION_WIDTH`.
pub fn description(name: &str, text: &str) -> String {
    let comment: Vec<&str> = text
        .lines()
        .map_while(|l| l.trim_start().strip_prefix('#'))
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let joined = comment.join(" ");
    let first = match joined.find(". ") {
        Some(end) => &joined[..=end],
        None => joined.as_str(),
    };
    let first = first.trim();
    let first = first
        .strip_prefix(name)
        .and_then(|rest| rest.split_once(':'))
        .filter(|(between, _)| between.len() < 12)
        .map_or(first, |(_, rest)| rest.trim_start());
    if first.chars().count() <= DESCRIPTION_WIDTH {
        return first.to_string();
    }
    let cut: String = first.chars().take(DESCRIPTION_WIDTH).collect();
    let at_word = cut.rfind(' ').unwrap_or(cut.len());
    format!("{}…", cut[..at_word].trim_end_matches([',', ';', ':', ' ']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(folder: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".toml").map(str::to_string)
            })
            .collect();
        files.sort();
        files
    }

    /// Every file in scenarios/ and matrices/ is bundled, so none is usable only from the source
    /// tree, and each says in its leading comment what it is for.
    #[test]
    fn every_scenario_and_matrix_file_is_bundled_and_described() {
        assert_eq!(files_in("scenarios"), names());
        assert_eq!(files_in("matrices"), names_of(Kind::Matrix));
        for kind in [Kind::Matrix, Kind::Scenario] {
            for name in names_of(kind) {
                let d = description(name, text(kind, name).unwrap());
                assert!(d.len() > 20, "{name}: no leading comment ({d:?})");
            }
        }
        assert_eq!(as_name(Path::new("login-flow")), Some("login-flow"));
        assert_eq!(as_name(Path::new("scenarios/login-flow.toml")), None);
        assert_eq!(as_name(Path::new("login-flow.toml")), None);
    }

    #[test]
    fn paths_inside_the_bundled_tree_fold_to_its_files() {
        let m = path_of(Kind::Matrix, "quick");
        assert_eq!(m, Path::new("<bundled>/matrices/quick.toml"));
        let dir = m.parent().unwrap();
        for (from, rel) in [
            (dir, "../scenarios/cache-ops.toml"),
            (dir.parent().unwrap(), "scenarios/cache-ops.toml"),
            (dir.parent().unwrap(), "./scenarios/./cache-ops.toml"),
        ] {
            let (path, text) = at_path(&from.join(rel)).unwrap();
            assert_eq!(path, location("cache-ops"));
            assert_eq!(text, scenario("cache-ops").unwrap());
        }
        for outside in [
            "scenarios/cache-ops.toml",
            "<bundled>/matrices/scenarios/cache-ops.toml",
            "<bundled>/../scenarios/cache-ops.toml",
            "<bundled>/scenarios/nope.toml",
            "/<bundled>/scenarios/cache-ops.toml",
        ] {
            assert!(at_path(Path::new(outside)).is_none(), "{outside}");
        }
    }

    #[test]
    fn the_description_is_the_first_sentence_of_the_leading_comment() {
        let text = "# cache-ops: raw load. More here\n# and here.\nkind = \"x\"\n";
        assert_eq!(description("cache-ops", text), "raw load.");
        let text = "# durability (no app): writers SET keys\n# and stop.\n\n# later\n";
        assert_eq!(
            description("durability", text),
            "writers SET keys and stop."
        );
        let text = "# The default matrix (`cachegate run`): every server.\n[matrix]\n";
        assert_eq!(
            description("quick", text),
            "The default matrix (`cachegate run`): every server."
        );
        let long = format!("# {}, and more words here.\n", "word ".repeat(30));
        let d = description("x", &long);
        assert!(d.ends_with("word…"), "{d}");
        assert!(d.chars().count() <= DESCRIPTION_WIDTH + 1, "{d}");
    }
}
