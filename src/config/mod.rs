//! Reading the files users write: matrices (`matrix_file`) and scenarios (`scenario_file`).
//! Every error names the file, line, column and field; unknown fields are rejected.

pub mod bounds;
pub mod bundled;
pub mod gates;
pub mod matrix_file;
pub mod report_section;
pub mod scenario_file;
pub mod schema;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use matrix_file::{load_matrix, open_matrix, LoadedMatrix, MatrixFile, StackSpec};
pub use scenario_file::{ScenarioKind, ScenarioParams};

/// Read and parse a TOML file, turning parse errors into `file:line:column: message`.
pub fn parse_toml_file<T: DeserializeOwned>(path: &Path) -> Result<(T, String)> {
    let text = read_text(path)?;
    let value = parse_toml_text(path, &text)?;
    Ok((value, text))
}

/// A file's text. A file that is not UTF-8 is bad input placed at its first bad byte (TOML is
/// UTF-8 by definition).
pub fn read_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| Error::Usage(format!("cannot read {}: {e}", path.display()));
    // Read at most one byte past the limit: `use = "/dev/zero"` or a huge file is refused
    // instead of filling the memory.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(Error::Usage(format!(
            "{} is larger than {} MiB: not a matrix or scenario file",
            path.display(),
            MAX_INPUT_BYTES >> 20
        )));
    }
    text_of(path, bytes)
}

/// The most bytes a matrix or scenario file may have (the bundled ones have a few KiB).
pub const MAX_INPUT_BYTES: u64 = 16 << 20;

/// Bytes as text, or bad input placed at the first byte that is not UTF-8.
pub fn text_of(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bad = e.as_bytes()[valid];
        let prefix = std::str::from_utf8(&e.as_bytes()[..valid]).expect("valid up to here");
        let field = field_at(prefix, valid).map_or(String::new(), |f| format!("field `{f}`: "));
        Error::input_at(
            path,
            prefix,
            valid,
            format!("{field}not valid UTF-8 (byte 0x{bad:02x}); save the file as UTF-8"),
        )
    })
}

pub fn parse_toml_text<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_string();
        match e.span() {
            Some(span) => {
                // Errors from a value's own parser ("bad version ...") do not say which field
                // they are about; name it from the text.
                let message = match field_at(text, span.start) {
                    Some(field) if !message.contains("field") => {
                        format!("field `{field}`: {message}")
                    }
                    _ => message,
                };
                Error::input_at(path, text, span.start, message)
            }
            None => Error::Input {
                location: path.display().to_string(),
                message,
            },
        }
    })
}

/// The dotted path of the key whose value starts at `offset`: the nearest `[table]` header above
/// plus the key on that line, e.g. `axes.server`.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let line_start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

/// Where `key = ...` is written inside `text[range]` (its first occurrence, as a table line or
/// in an inline table), to place errors found after parsing.
pub fn key_offset(text: &str, range: std::ops::Range<usize>, key: &str) -> Option<usize> {
    let end = range.end.min(text.len());
    let start = range.start.min(end);
    let slice = &text[start..end];
    slice.match_indices(key).find_map(|(i, _)| {
        let before = slice[..i].chars().next_back();
        let after = slice[i + key.len()..].trim_start_matches([' ', '\t', '"']);
        let word_start = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
        (word_start && after.starts_with('=')).then_some(start + i)
    })
}

/// The text range of the `n`th table with this header line (`[matrix]`, `[[expect]]`): from the
/// header to the next header.
pub fn table_range(text: &str, header: &str, n: usize) -> Option<std::ops::Range<usize>> {
    let mut offset = 0;
    let mut found = 0;
    let mut start = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            if let Some(s) = start {
                return Some(s..offset);
            }
            if trimmed == header {
                if found == n {
                    start = Some(offset);
                }
                found += 1;
            }
        }
        offset += line.len();
    }
    start.map(|s| s..text.len())
}

/// A duration written like "30s", "500ms", "2m" (humantime syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s)
            .map(HumanDuration)
            .map_err(|e| format!("bad duration `{s}` ({e}); write e.g. \"500ms\", \"30s\", \"2m\""))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// humantime 2's units, as `parse_duration` accepts them.
const DURATION_UNITS: &[&str] = &[
    "nanos", "nsec", "ns", "usec", "us", "µs", "millis", "msec", "ms", "seconds", "second", "secs",
    "sec", "s", "minutes", "minute", "mins", "min", "m", "hours", "hour", "hrs", "hr", "h", "days",
    "day", "d", "weeks", "week", "wks", "wk", "w", "months", "month", "M", "years", "year", "yrs",
    "yr", "y",
];

impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut units = DURATION_UNITS.to_vec();
        // Longest first, so an alternation never stops at a prefix (`m` of `ms`).
        units.sort_by_key(|u| std::cmp::Reverse(u.len()));
        schema::pattern_string(
            &format!(r"^(0|\s*([0-9]+(\.[0-9]+)?\s*({})\s*)+)$", units.join("|")),
            "A duration: a number and a unit, repeatable: \"500ms\", \"30s\", \"2m\", \
             \"1h 30m\".",
        )
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
