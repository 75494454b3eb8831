//! `cachegate list`: what is bundled into the binary, and what a file on disk shadows.

use std::path::Path;

use crate::config::bundled::{self, Kind};
use crate::exit_code;

pub fn run() -> anyhow::Result<i32> {
    print!("{}", listing(Path::new(".")));
    Ok(exit_code::OK)
}

/// The listing as seen from folder `here`: bundled matrices (run by name, unless
/// `matrices/NAME.toml` exists here) and bundled scenarios (`use = "NAME"`).
pub fn listing(here: &Path) -> String {
    let mut out = String::new();
    for (kind, title, note) in [
        (
            Kind::Matrix,
            "Bundled matrices",
            "`cachegate run NAME`; a file matrices/NAME.toml here is run instead",
        ),
        (
            Kind::Scenario,
            "Bundled scenarios",
            "`use = \"NAME\"` in a matrix's [scenario]; a file is used by its path",
        ),
    ] {
        out.push_str(&format!("{title} ({note}):\n"));
        let names = bundled::names_of(kind);
        let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
        for name in names {
            let text = bundled::text(kind, name).expect("a listed name has a text");
            out.push_str(&format!(
                "  {name:<width$}  {}\n",
                bundled::description(name, text)
            ));
            let file = Path::new(kind.folder()).join(format!("{name}.toml"));
            if here.join(&file).is_file() {
                let what = match kind {
                    Kind::Matrix => format!(
                        "shadowed by {}: `cachegate run {name}` runs that file",
                        file.display()
                    ),
                    Kind::Scenario => format!(
                        "{} is here too; it is used by that path, `use = \"{name}\"` is the \
                         bundled one",
                        file.display()
                    ),
                };
                out.push_str(&format!("  {:<width$}  ({what})\n", ""));
            }
        }
        out.push('\n');
    }
    out
}
