//! The matrix file format (`matrices/*.toml`). See `matrices/quick.toml` for a commented example.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::bundled;
use super::scenario_file::ScenarioParams;
use super::{bounds, key_offset, parse_toml_text, read_text, table_range};
use crate::error::{Error, Result};
use crate::server::tls::Transport;
use crate::server::{Persistence, ServerRef, ServerSettings, Topology};
use crate::target::TargetSection;

/// A stack as written in a matrix: `[stacks.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StackSpec {
    /// Python version, e.g. "3.11" (Django 6 needs >= 3.12).
    #[serde(default = "default_python")]
    pub python: String,
    /// pip requirement specifiers, e.g. ["django==5.2.*", "redis==5.*", "django-redis==5.4.*"].
    pub packages: Vec<String>,
}

fn default_python() -> String {
    "3.11".into()
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// A local child process (the default; no Docker needed).
    Process,
    /// A container on the local Docker engine, from a locally built or registry image.
    Container,
}

impl RuntimeKind {
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Process => "process",
            RuntimeKind::Container => "container",
        }
    }
}

/// `[runtime.*]`: options of each runtime.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    #[serde(default)]
    pub container: crate::server::container::ContainerOptions,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatrixFile {
    pub matrix: MatrixMeta,
    pub axes: Axes,
    /// The scenario every cell runs: a bundled one by name or a file (`use`), and fields that
    /// override it.
    #[schemars(with = "ScenarioParams")]
    pub scenario: Spanned<ScenarioParams>,
    /// Server settings applied to every cell.
    #[serde(default)]
    pub server: ServerSettings,
    /// Options of the runtimes on the `runtime` axis, e.g. `[runtime.container] network = "bridge"`.
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// Binaries to use instead of the catalog, e.g. `"redis@7.2" = "/opt/redis/bin/redis-server"`.
    #[serde(default)]
    pub server_paths: BTreeMap<ServerRef, PathBuf>,
    /// Client stacks named on the `stack` axis: `[stacks.NAME] python = "3.11", packages = [...]`.
    #[serde(default)]
    pub stacks: BTreeMap<String, StackSpec>,
    /// Django settings named on the `settings` axis, written as in settings.py
    /// (`CACHES`, `SESSION_ENGINE`, ...). `{server}` in a string is the cell's redis URL.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Map<String, serde_json::Value>>")]
    pub settings: BTreeMap<String, toml::Table>,
    /// The web app for HTTP scenarios: the bundled app (default) or an external URL.
    #[serde(default)]
    pub target: TargetSection,
    #[serde(default)]
    pub include: Vec<CellSelector>,
    #[serde(default)]
    pub exclude: Vec<CellSelector>,
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// Thresholds on measured metrics, e.g. `"get.p99" = "< 2ms"`, `errors = "== 0"`.
    #[serde(default)]
    pub gates: crate::config::gates::Gates,
    /// How the HTML report lays out the verdict matrix, and the team's signature explanations.
    #[serde(default)]
    pub report: super::report_section::ReportSection,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatrixMeta {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Run each cell this many times (gates compare medians).
    #[serde(default = "one")]
    pub repeat: u32,
}

fn one() -> u32 {
    1
}

/// The cross product of these is the matrix, minus `exclude`, plus `include`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Axes {
    pub server: Vec<ServerRef>,
    #[serde(default = "default_persistence")]
    pub persistence: Vec<Persistence>,
    #[serde(default = "default_runtime")]
    pub runtime: Vec<RuntimeKind>,
    /// How the cell's servers are arranged: `standalone` (default), `replica:N`, `sentinel`,
    /// `cluster:M`, `cluster:M:R`.
    #[serde(default = "default_topology")]
    pub topology: Vec<Topology>,
    /// How clients reach the server: `plaintext` (default) or `tls` (certificates made per
    /// cell, see `[server.tls]`; `{server}` becomes a `rediss://` URL).
    #[serde(default = "default_transport")]
    pub transport: Vec<Transport>,
    /// maxmemory-policy values (with `[server] maxmemory`), e.g. ["noeviction", "allkeys-lru"].
    #[serde(default)]
    pub policy: Vec<String>,
    /// Client stacks (names of `[stacks.NAME]`), for HTTP scenarios on the bundled app.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub stack: Vec<Spanned<String>>,
    /// Django settings sets (names of `[settings.NAME]`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub settings: Vec<Spanned<String>>,
    /// Scenario parameter sets, each overriding `[scenario]`; each needs a `label`.
    #[serde(default)]
    #[schemars(with = "Vec<ScenarioParams>")]
    pub variant: Vec<Spanned<ScenarioParams>>,
}

fn default_persistence() -> Vec<Persistence> {
    vec![Persistence::none()]
}

fn default_runtime() -> Vec<RuntimeKind> {
    vec![RuntimeKind::Process]
}

fn default_topology() -> Vec<Topology> {
    vec![Topology::Standalone]
}

fn default_transport() -> Vec<Transport> {
    vec![Transport::Plaintext]
}

/// Picks cells by axis values; unset fields match anything. `server = "redis@6"` matches every
/// redis 6.x on the server axis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CellSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<Topology>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedOutcome {
    Pass,
    Fail,
}

/// What a cell is expected to do; cells no `[[expect]]` matches are expected to pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub when: CellSelector,
    pub verdict: ExpectedOutcome,
    /// Why this is expected, shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With `verdict = "fail"`: the failure must carry this text in its signature (the app's
    /// exception, or an error kind); failing any other way is a FAIL, not an XFAIL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A parsed matrix with the scenario file it uses already read.
#[derive(Debug, Clone)]
pub struct LoadedMatrix {
    pub path: PathBuf,
    /// The file's text, to place errors found after parsing.
    pub text: String,
    pub file: MatrixFile,
    /// `[scenario]` over the `use`d file: variants overlay this.
    pub scenario: ScenarioParams,
    /// `[report]`, checked, with its explanations file read.
    pub report: super::report_section::ReportOptions,
}

/// The matrix a command-line argument names. A path (it has a `/`, `\\` or `.`) is that file. A
/// bare name is `matrices/NAME.toml` in the current folder when that file exists (files on disk
/// win, so the source tree runs its own files), else the bundled matrix of that name.
pub fn open_matrix(arg: &Path) -> Result<LoadedMatrix> {
    let bundled_names = || bundled::names_of(bundled::Kind::Matrix).join(", ");
    let Some(name) = bundled::as_name(arg) else {
        return load_matrix(arg).map_err(|e| match e {
            // A source-tree path typed outside the source tree: say how to get the bundled one.
            Error::Usage(m) if !arg.exists() => {
                let stem = arg.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                let hint = match bundled::text(bundled::Kind::Matrix, stem) {
                    Some(_) => format!("; `{stem}` (a bare name) runs the bundled matrix"),
                    None => String::new(),
                };
                Error::Usage(format!("{m}{hint}"))
            }
            e => e,
        });
    };
    let on_disk = Path::new(bundled::Kind::Matrix.folder()).join(format!("{name}.toml"));
    if on_disk.is_file() {
        return load_matrix(&on_disk);
    }
    match bundled::text(bundled::Kind::Matrix, name) {
        Some(text) => load_matrix_text(bundled::path_of(bundled::Kind::Matrix, name), text.into()),
        None => Err(Error::Usage(format!(
            "no matrix `{name}`: no file {} here and no bundled matrix of that name (bundled: \
             {}); a matrix file is named by a path, e.g. `./{name}.toml`",
            on_disk.display(),
            bundled_names()
        ))),
    }
}

/// A matrix file on disk.
pub fn load_matrix(path: &Path) -> Result<LoadedMatrix> {
    let text = read_text(path)?;
    load_matrix_text(path.to_path_buf(), text)
}

/// A matrix from its text; `path` is where it is (a file, or a path in the bundled tree, whose
/// scenario files are then the bundled ones).
pub fn load_matrix_text(path: PathBuf, text: String) -> Result<LoadedMatrix> {
    let path = path.as_path();
    let mut file: MatrixFile = parse_toml_text(path, &text)?;
    resolve_project(path, &mut file.target);
    let at = |offset: usize, message: String| Error::input_at(path, &text, offset, message);

    let section = file.scenario.get_ref();
    let mut scenario = ScenarioParams::default();
    if let Some(use_file) = &section.use_file {
        let (resolved, scenario_text) = match bundled::as_name(use_file.get_ref()) {
            Some(name) => {
                let text = bundled::scenario(name).ok_or_else(|| {
                    at(
                        use_file.span().start,
                        format!(
                            "field `use`: no bundled scenario `{name}` (bundled: {}); a scenario \
                             file is named by a path, e.g. `./{name}.toml`",
                            bundled::names().join(", ")
                        ),
                    )
                })?;
                (bundled::location(name), text.to_string())
            }
            None => {
                let not_found = || {
                    at(
                        use_file.span().start,
                        format!(
                            "field `use`: scenario file `{}` not found next to the matrix or in the \
                             folder above it (bundled scenarios are used by name: {})",
                            use_file.get_ref().display(),
                            bundled::names().join(", ")
                        ),
                    )
                };
                if bundled::is_bundled(path) {
                    // A bundled matrix sees only the bundled tree.
                    let (resolved, text) =
                        resolve_bundled_use(path, use_file.get_ref()).ok_or_else(not_found)?;
                    (resolved, text.to_string())
                } else {
                    let resolved = resolve_use(path, use_file.get_ref()).ok_or_else(not_found)?;
                    if resolved.is_dir() {
                        return Err(at(
                            use_file.span().start,
                            format!(
                                "field `use`: `{}` is a folder, not a scenario file",
                                resolved.display()
                            ),
                        ));
                    }
                    let text = read_text(&resolved)?;
                    (resolved, text)
                }
            }
        };
        let from_file: ScenarioParams = parse_toml_text(&resolved, &scenario_text)?;
        check_bounds(
            &resolved,
            &scenario_text,
            0..scenario_text.len(),
            &from_file,
        )?;
        if from_file.use_file.is_some() || from_file.label.is_some() {
            return Err(Error::input_file(
                &resolved,
                "fields `use` and `label` belong in matrix files, not scenario files",
            ));
        }
        scenario = from_file;
    }
    scenario = scenario.overlay(section);
    if scenario.kind.is_none() {
        return Err(at(
            file.scenario.span().start,
            "field `kind` missing: set it in [scenario] or in the `use`d scenario file".into(),
        ));
    }
    if section.label.is_some() {
        return Err(at(
            file.scenario.span().start,
            "field `label` belongs in [[axes.variant]]".into(),
        ));
    }
    if file.axes.server.is_empty() {
        return Err(Error::input_file(
            path,
            "field `axes.server` must list at least one server",
        ));
    }
    for (axis, names, table) in [
        (
            "stack",
            &file.axes.stack,
            file.stacks.keys().collect::<Vec<_>>(),
        ),
        (
            "settings",
            &file.axes.settings,
            file.settings.keys().collect::<Vec<_>>(),
        ),
    ] {
        for name in names {
            if !table.iter().any(|k| *k == name.get_ref()) {
                let known: Vec<String> = table.iter().map(|k| format!("`{k}`")).collect();
                return Err(at(
                    name.span().start,
                    format!(
                        "field `axes.{axis}`: no [{axis}{}.{}] table (defined: {})",
                        if axis == "stack" { "s" } else { "" },
                        name.get_ref(),
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
    }
    check_no_server(path, &text, &file, scenario.kind.as_ref())?;
    let mut labels = std::collections::BTreeSet::new();
    for variant in &file.axes.variant {
        let v = variant.get_ref();
        let start = variant.span().start;
        match &v.label {
            None => {
                return Err(at(
                    start,
                    "field `label` missing in [[axes.variant]]".into(),
                ))
            }
            Some(l) if !labels.insert(l.clone()) => {
                return Err(at(
                    start,
                    format!("field `label`: `{l}` is used by two variants"),
                ))
            }
            _ => {}
        }
        if v.use_file.is_some() || v.kind.is_some() {
            return Err(at(
                start,
                "fields `use` and `kind` are not allowed in a variant".into(),
            ));
        }
    }
    check_bounds(path, &text, file.scenario.span(), section)?;
    for variant in &file.axes.variant {
        check_bounds(path, &text, variant.span(), variant.get_ref())?;
    }
    check_counts(path, &text, &file)?;
    check_target(path, &text, &file.target)?;
    check_project(path, &text, &file.target, scenario.kind.as_ref())?;
    check_expectations(path, &text, &file)?;
    let report = file.report.resolve(path, &text)?;
    Ok(LoadedMatrix {
        path: path.to_path_buf(),
        text,
        file,
        scenario,
        report,
    })
}

/// `none` on the server axis (or in an `[[include]]`) runs no cache server: scenarios that talk
/// to the server itself have nothing to run against.
fn check_no_server(
    path: &Path,
    text: &str,
    file: &MatrixFile,
    kind: Option<&super::ScenarioKind>,
) -> Result<()> {
    // The kinds that work on the server itself, over its protocol.
    let Some(kind) = kind
        .filter(|k| ["cache-ops", "durability", "eviction", "server-upgrade"].contains(&k.name()))
    else {
        return Ok(());
    };
    let why = format!(
        "`none` runs no cache server, but scenario kind `{}` works on the server itself; \
         baselines without a server run login-flow, session-persistence or outage",
        kind.name()
    );
    let none = |s: &ServerRef| s.family == crate::server::Family::NoServer;
    if file.axes.server.iter().any(none) {
        let range = super::table_range(text, "[axes]", 0).unwrap_or(0..text.len());
        return Err(error_at(
            path,
            text,
            range,
            "server",
            format!("field `axes.server`: {why}"),
        ));
    }
    for (n, inc) in file.include.iter().enumerate() {
        if inc.server.as_ref().is_some_and(none) {
            let range = super::table_range(text, "[[include]]", n).unwrap_or(0..text.len());
            return Err(error_at(
                path,
                text,
                range,
                "server",
                format!("field `include.server`: {why}"),
            ));
        }
    }
    Ok(())
}

/// An error at `key` inside `range` of `text` (or at the range's start if it cannot be found).
fn error_at(
    path: &Path,
    text: &str,
    range: std::ops::Range<usize>,
    key: &str,
    message: String,
) -> Error {
    let offset = key_offset(text, range.clone(), key).unwrap_or(range.start);
    Error::input_at(path, text, offset, message)
}

/// Every count and duration of one layer of scenario parameters within its bounds.
fn check_bounds(
    path: &Path,
    text: &str,
    range: std::ops::Range<usize>,
    params: &ScenarioParams,
) -> Result<()> {
    // A table's span may cover only its header: search to the next header.
    let end = text[range.start..]
        .match_indices("\n[")
        .map(|(i, _)| range.start + i)
        .find(|e| *e >= range.end)
        .unwrap_or(text.len());
    bounds::check_params(params)
        .map_err(|(field, message)| error_at(path, text, range.start..end, field, message))
}

/// `repeat`, the axes and the number of cells: at least one cell, and not absurdly many. Counted
/// before expanding, so a huge matrix is refused without being built.
fn check_counts(path: &Path, text: &str, file: &MatrixFile) -> Result<()> {
    let whole = 0..text.len();
    let matrix_table = table_range(text, "[matrix]", 0).unwrap_or(whole.clone());
    let repeat = file.matrix.repeat;
    if repeat == 0 || repeat > bounds::MAX_REPEAT {
        return Err(error_at(
            path,
            text,
            matrix_table,
            "repeat",
            format!(
                "field `matrix.repeat` = {repeat} must be between 1 and {}: each repeat is a full \
                 run of every cell",
                bounds::MAX_REPEAT
            ),
        ));
    }
    let axes_table = table_range(text, "[axes]", 0).unwrap_or(whole.clone());
    let a = &file.axes;
    for (axis, len) in [
        ("persistence", a.persistence.len()),
        ("runtime", a.runtime.len()),
        ("topology", a.topology.len()),
    ] {
        if len == 0 {
            return Err(error_at(
                path,
                text,
                axes_table.clone(),
                axis,
                format!(
                    "field `axes.{axis}` is empty, so the matrix has no cell; list at least one \
                     value or leave the axis out for the default"
                ),
            ));
        }
    }
    let names = |v: &[Spanned<String>]| v.iter().map(|s| s.get_ref().clone()).collect::<Vec<_>>();
    for (axis, values) in [
        (
            "server",
            a.server.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ),
        (
            "persistence",
            a.persistence.iter().map(|p| p.to_string()).collect(),
        ),
        (
            "topology",
            a.topology.iter().map(|t| t.to_string()).collect(),
        ),
        ("policy", a.policy.clone()),
        ("stack", names(&a.stack)),
        ("settings", names(&a.settings)),
    ] {
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = values.iter().find(|v| !seen.insert(*v)) {
            return Err(error_at(
                path,
                text,
                axes_table.clone(),
                axis,
                format!(
                    "field `axes.{axis}` lists `{dup}` twice: two cells would have one id and \
                     overwrite each other's logs"
                ),
            ));
        }
    }
    let cells = [
        a.server.len(),
        a.persistence.len(),
        a.runtime.len(),
        a.topology.len(),
        a.policy.len().max(1),
        a.stack.len().max(1),
        a.settings.len().max(1),
        a.variant.len().max(1),
    ]
    .iter()
    .fold(1u64, |n, len| n.saturating_mul(*len as u64))
    .saturating_add(file.include.len() as u64)
    .saturating_mul(repeat as u64);
    if cells > bounds::MAX_CELLS {
        return Err(Error::input_file(
            path,
            format!(
                "the matrix has up to {cells} cells (axes multiplied, times repeat {repeat}); the \
                 limit is {}: split it into several matrices",
                bounds::MAX_CELLS
            ),
        ));
    }
    Ok(())
}

/// `[target] project` is relative to the matrix file's folder; a bundled matrix's names the
/// compiled-in example project (written to the cache), else a folder relative to where the
/// matrix sits in the repository (`matrices/`) under the current folder.
fn resolve_project(path: &Path, target: &mut TargetSection) {
    let Some(project) = &target.project else {
        return;
    };
    if bundled::is_bundled(path) {
        if let Some(example) = crate::target::project::bundled_example(project) {
            target.project = Some(example);
            return;
        }
    }
    let base = if bundled::is_bundled(path) {
        std::env::current_dir().unwrap_or_default().join("matrices")
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let joined = base.join(project);
    target.project = Some(joined.canonicalize().unwrap_or(joined));
}

/// `[target] project`: a Django project folder with the settings it names, not beside `url`;
/// `login = "form"` needs the project (its user model makes the accounts).
fn check_project(
    path: &Path,
    text: &str,
    target: &TargetSection,
    kind: Option<&super::ScenarioKind>,
) -> Result<()> {
    let range = table_range(text, "[target]", 0).unwrap_or(0..text.len());
    let bad = |field: &str, why: String| {
        error_at(
            path,
            text,
            range.clone(),
            field,
            format!("field `target.{field}`: {why}"),
        )
    };
    let Some(project) = crate::target::project::Project::of(target) else {
        for field in ["settings", "wsgi", "requirements"] {
            let set = match field {
                "settings" => target.settings.is_some(),
                "wsgi" => target.wsgi.is_some(),
                _ => target.requirements.is_some(),
            };
            if set {
                return Err(bad(field, "only applies with `target.project`".into()));
            }
        }
        if kind.is_some_and(|k| k.name() == "django-tests") {
            return Err(bad(
                "project",
                "scenario kind `django-tests` runs a project's own test suite: name the project \
                 (its folder, with manage.py)"
                    .into(),
            ));
        }
        if target.login == crate::target::protocol::LoginKind::Form {
            return Err(bad(
                "login",
                "`form` signs in with accounts made through the project's user model: it needs \
                 `target.project`"
                    .into(),
            ));
        }
        return Ok(());
    };
    if target.url.is_some() {
        return Err(bad(
            "project",
            "set either `project` (cachegate serves it) or `url` (an app already running), not \
             both"
                .into(),
        ));
    }
    if let Some(problem) = project.problem() {
        let field = if problem.contains("settings") {
            "settings"
        } else if problem.contains("wsgi") {
            "wsgi"
        } else if problem.contains("requirements") {
            "requirements"
        } else {
            "project"
        };
        return Err(bad(field, problem));
    }
    Ok(())
}

/// `[target] url`: an http(s) URL of an app on 127.0.0.1 (the only address traffic may go to);
/// `[target] server`: a 127.0.0.1 address and port.
fn check_target(path: &Path, text: &str, target: &TargetSection) -> Result<()> {
    let range = table_range(text, "[target]", 0).unwrap_or(0..text.len());
    if let Some(server) = &target.server {
        let bad = |why: &str| {
            error_at(
                path,
                text,
                range.clone(),
                "server",
                format!("field `target.server` = `{server}`: {why}"),
            )
        };
        let addr: std::net::SocketAddr =
            server.parse().map_err(|_| bad("expected 127.0.0.1:PORT"))?;
        if addr.ip() != std::net::IpAddr::from([127, 0, 0, 1]) {
            return Err(bad(
                "cachegate only sends traffic to 127.0.0.1; publish the server's port there",
            ));
        }
        if addr.port() == 0 {
            return Err(bad("port 0 is no server's port"));
        }
    }
    let Some(url) = &target.url else {
        return Ok(());
    };
    let bad = |why: String| {
        error_at(
            path,
            text,
            range.clone(),
            "url",
            format!("field `target.url` = `{url}`: {why}"),
        )
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("use http:// or https://".into()));
    }
    if parsed.host_str() != Some("127.0.0.1") {
        return Err(bad(
            "cachegate only sends traffic to 127.0.0.1; run the app there".into(),
        ));
    }
    Ok(())
}

/// Each `[[expect]]` must be able to match: every value in its `when` is on the matrix's axes
/// (a typo would silently turn an expected failure into a plain cell), and `signature` only goes
/// with `verdict = "fail"` (it is what the failure must look like).
fn check_expectations(path: &Path, text: &str, file: &MatrixFile) -> Result<()> {
    let a = &file.axes;
    let names = |v: &[Spanned<String>]| v.iter().map(|s| s.get_ref().clone()).collect::<Vec<_>>();
    let variants: Vec<String> = a
        .variant
        .iter()
        .filter_map(|v| v.get_ref().label.clone())
        .collect();
    for (n, e) in file.expect.iter().enumerate() {
        let range = table_range(text, "[[expect]]", n).unwrap_or(0..text.len());
        let w = &e.when;
        let mut missing: Option<(&str, String, Vec<String>)> = None;
        // A value counts when an axis or an [[include]] puts it in the matrix.
        let included = |f: fn(&CellSelector) -> Option<String>| {
            file.include.iter().filter_map(f).collect::<Vec<_>>()
        };
        let servers: Vec<&ServerRef> = a
            .server
            .iter()
            .chain(file.include.iter().filter_map(|i| i.server.as_ref()))
            .collect();
        if let Some(server) = &w.server {
            if !servers
                .iter()
                .any(|s| s.family == server.family && server.matches(&s.version))
            {
                let have = servers.iter().map(|s| s.to_string()).collect();
                missing = Some(("server", server.to_string(), have));
            }
        }
        if let Some(p) = &w.persistence {
            let have: Vec<String> = a
                .persistence
                .iter()
                .chain(file.include.iter().filter_map(|i| i.persistence.as_ref()))
                .map(|p| p.to_string())
                .collect();
            if !have.contains(&p.to_string()) {
                missing = missing.or(Some(("persistence", p.to_string(), have)));
            }
        }
        let with = |mut axis: Vec<String>, more: Vec<String>| {
            axis.extend(more);
            axis
        };
        for (axis, want, have) in [
            (
                "policy",
                &w.policy,
                with(a.policy.clone(), included(|i| i.policy.clone())),
            ),
            (
                "stack",
                &w.stack,
                with(names(&a.stack), included(|i| i.stack.clone())),
            ),
            (
                "settings",
                &w.settings,
                with(names(&a.settings), included(|i| i.settings.clone())),
            ),
            ("variant", &w.variant, variants.clone()),
        ] {
            if let Some(want) = want {
                if !have.contains(want) {
                    missing = missing.or(Some((axis, want.clone(), have)));
                }
            }
        }
        if let Some((axis, want, have)) = missing {
            return Err(error_at(
                path,
                text,
                range,
                axis,
                format!(
                    "field `expect.when.{axis}`: `{want}` is not on the matrix's {axis} axis or in \
                     an [[include]] ({}), so this expectation would never apply",
                    if have.is_empty() { "which is empty".to_string() } else { have.join(", ") }
                ),
            ));
        }
        if e.signature.is_some() && e.verdict == ExpectedOutcome::Pass {
            return Err(error_at(
                path,
                text,
                range,
                "signature",
                "field `expect.signature` only applies to `verdict = \"fail\"` (it is what the \
                 failure must look like); a passing cell has no signature"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Scenario files are found next to the matrix or in the folder above it, so
/// `use = "scenarios/cache-ops.toml"` works from `matrices/`.
fn resolve_use(matrix: &Path, use_file: &Path) -> Option<PathBuf> {
    use_candidates(matrix, use_file).find(|p| p.exists())
}

/// The same two places inside the bundled tree, for a bundled matrix.
fn resolve_bundled_use(matrix: &Path, use_file: &Path) -> Option<(PathBuf, &'static str)> {
    use_candidates(matrix, use_file).find_map(|p| bundled::at_path(&p))
}

/// Where a relative `use` path may be: next to the matrix, then in the folder above it.
fn use_candidates(matrix: &Path, use_file: &Path) -> impl Iterator<Item = PathBuf> {
    let dir = matrix.parent().unwrap_or(Path::new(".")).to_path_buf();
    let up = dir.parent().map(Path::to_path_buf);
    let use_file = use_file.to_path_buf();
    [Some(dir), up]
        .into_iter()
        .flatten()
        .map(move |d| d.join(&use_file))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error in a bundled matrix is placed in the bundled tree, not in a file that does not
    /// exist on disk; a `use` path that leaves the bundled tree finds nothing.
    #[test]
    fn errors_in_a_bundled_matrix_name_its_place_in_the_bundled_tree() {
        let path = bundled::path_of(bundled::Kind::Matrix, "quick");
        let good = bundled::text(bundled::Kind::Matrix, "quick").unwrap();
        let loaded = load_matrix_text(path.clone(), good.to_string()).unwrap();
        assert_eq!(loaded.path, Path::new("<bundled>/matrices/quick.toml"));
        let broken = good.replace("connections = 20", "connections = \"many\"");
        let e = load_matrix_text(path.clone(), broken)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("<bundled>/matrices/quick.toml:14:"), "{e}");
        assert!(e.contains("connections"), "{e}");
        let escaped = good.replace("scenarios/cache-ops.toml", "../../scenarios/cache-ops.toml");
        let e = load_matrix_text(path, escaped).unwrap_err().to_string();
        assert!(e.starts_with("<bundled>/matrices/quick.toml:13:"), "{e}");
        assert!(e.contains("not found"), "{e}");
    }
}
