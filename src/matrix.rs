//! Expands a matrix file into cells: the cross product of the axes, minus `exclude`, plus
//! `include`, each with a stable id built from its axis values and the expectation that applies.

use std::collections::BTreeMap;

use crate::config::matrix_file::{CellSelector, ExpectedOutcome, RuntimeKind};
use crate::config::LoadedMatrix;
use crate::error::{Error, Result};
use crate::scenario::{self, ScenarioConfig};
use crate::server::tls::Transport;
use crate::server::{Persistence, ServerMode, ServerRef, ServerSettings, ServerSpec, Topology};
use crate::stack::StackSpec;
use crate::target::TargetSection;

/// The axis values that identify a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellAxes {
    pub server: ServerRef,
    pub persistence: Persistence,
    pub runtime: RuntimeKind,
    pub topology: Topology,
    pub transport: Transport,
    pub policy: Option<String>,
    pub stack: Option<String>,
    pub settings: Option<String>,
    pub variant: Option<String>,
}

impl CellAxes {
    /// Stable id:
    /// `server/persistence[/runtime][/topology][/transport][/policy][/stack][/settings][/variant]`;
    /// the default runtime, topology and transport (process, standalone, plaintext) are left out.
    pub fn id(&self) -> String {
        let mut parts = vec![self.server.to_string(), self.persistence.to_string()];
        if self.runtime != RuntimeKind::Process {
            parts.push(self.runtime.name().to_string());
        }
        if !self.topology.is_standalone() {
            parts.push(self.topology.to_string());
        }
        if !self.transport.is_plaintext() {
            parts.push(self.transport.name().to_string());
        }
        parts.extend(
            [&self.policy, &self.stack, &self.settings, &self.variant]
                .into_iter()
                .flatten()
                .cloned(),
        );
        parts.join("/")
    }

    pub fn as_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([
            ("server".to_string(), self.server.to_string()),
            ("persistence".to_string(), self.persistence.to_string()),
            ("runtime".to_string(), self.runtime.name().to_string()),
        ]);
        // Left out when standalone, so results of runs before topologies read the same.
        if !self.topology.is_standalone() {
            m.insert("topology".into(), self.topology.to_string());
        }
        if !self.transport.is_plaintext() {
            m.insert("transport".into(), self.transport.name().into());
        }
        for (k, v) in [
            ("policy", &self.policy),
            ("stack", &self.stack),
            ("settings", &self.settings),
            ("variant", &self.variant),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), v.clone());
            }
        }
        m
    }

    pub fn matches(&self, sel: &CellSelector) -> bool {
        // An unset selector field matches anything; a set one must equal the cell's value.
        let same = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
        sel.server
            .as_ref()
            .is_none_or(|s| s.family == self.server.family && s.matches(&self.server.version))
            && sel
                .persistence
                .as_ref()
                .is_none_or(|p| *p == self.persistence)
            && sel.runtime.is_none_or(|r| r == self.runtime)
            && sel.topology.is_none_or(|t| t == self.topology)
            && sel.transport.is_none_or(|t| t == self.transport)
            && same(&sel.policy, &self.policy)
            && same(&sel.stack, &self.stack)
            && same(&sel.settings, &self.settings)
            && same(&sel.variant, &self.variant)
    }
}

#[derive(Debug, Clone)]
pub struct Cell {
    pub matrix: String,
    pub id: String,
    pub axes: CellAxes,
    pub repeat: u32,
    pub spec: ServerSpec,
    pub scenario: ScenarioConfig,
    pub expected: ExpectedOutcome,
    pub expect_reason: Option<String>,
    pub expect_signature: Option<String>,
    /// HTTP scenarios on the bundled app: the stack and the Django settings of this cell.
    pub stack: Option<(String, StackSpec)>,
    /// Every stack the matrix defines, for scenarios that run a second one (stack-transition).
    pub stacks: std::collections::BTreeMap<String, StackSpec>,
    pub app_settings: Option<toml::Table>,
    /// Every settings table the matrix defines, for scenarios that run a second app.
    pub settings: std::collections::BTreeMap<String, toml::Table>,
    pub target: TargetSection,
    /// Container runtime options (used when `axes.runtime` is container).
    pub container: crate::server::container::ContainerOptions,
    pub gates: crate::config::gates::Gates,
}

/// An error in the `n`th `[[include]]`, placed at its `key` (or the include's start).
fn include_error(m: &LoadedMatrix, n: usize, key: &str, message: String) -> Error {
    let whole = 0..m.text.len();
    let range = crate::config::table_range(&m.text, "[[include]]", n)
        .or_else(|| {
            crate::config::key_offset(&m.text, whole.clone(), "include").map(|o| o..m.text.len())
        })
        .unwrap_or(whole);
    let offset = crate::config::key_offset(&m.text, range.clone(), key).unwrap_or(range.start);
    Error::input_at(
        &m.path,
        &m.text,
        offset,
        format!("field `include.{key}`: {message}"),
    )
}

/// All cells of a matrix, repeats included, in a stable order.
pub fn expand(m: &LoadedMatrix) -> Result<Vec<Cell>> {
    let f = &m.file;
    let kind = m
        .scenario
        .kind
        .as_ref()
        .and_then(|k| scenario::kind_info(k.name()));
    if kind.is_some_and(|k| k.needs_app || k.needs_stack)
        && f.target.url.is_none()
        && (f.axes.stack.is_empty() || f.axes.settings.is_empty())
    {
        return Err(Error::input_at(
            &m.path,
            &m.text,
            f.scenario.span().start,
            format!(
                "{} on the bundled app needs `axes.stack` and `axes.settings` (or `[target] url`)",
                kind.map_or("this scenario", |k| k.name)
            ),
        ));
    }
    let mut axes_list = Vec::new();
    // Optional axes contribute one `None` when absent, so they do not empty the product.
    let optional = |values: Vec<String>| -> Vec<Option<String>> {
        if values.is_empty() {
            vec![None]
        } else {
            values.into_iter().map(Some).collect()
        }
    };
    let variants = optional(
        f.axes
            .variant
            .iter()
            .filter_map(|v| v.get_ref().label.clone())
            .collect(),
    );
    let stacks = optional(f.axes.stack.iter().map(|s| s.get_ref().clone()).collect());
    let settings = optional(
        f.axes
            .settings
            .iter()
            .map(|s| s.get_ref().clone())
            .collect(),
    );
    let mut combos: Vec<CellAxes> = f
        .axes
        .server
        .iter()
        .map(|server| CellAxes {
            server: server.clone(),
            persistence: Persistence::none(),
            runtime: RuntimeKind::Process,
            topology: Topology::Standalone,
            transport: Transport::Plaintext,
            policy: None,
            stack: None,
            settings: None,
            variant: None,
        })
        .collect();
    combos = product(combos, &f.axes.persistence, |a, p| {
        a.persistence = p.clone()
    });
    combos = product(combos, &f.axes.runtime, |a, r| a.runtime = *r);
    combos = product(combos, &f.axes.topology, |a, t| a.topology = *t);
    combos = product(combos, &f.axes.transport, |a, t| a.transport = *t);
    let policies = optional(f.axes.policy.clone());
    combos = product(combos, &policies, |a, p| a.policy = p.clone());
    combos = product(combos, &stacks, |a, s| a.stack = s.clone());
    combos = product(combos, &settings, |a, s| a.settings = s.clone());
    combos = product(combos, &variants, |a, v| a.variant = v.clone());
    axes_list.extend(
        combos
            .into_iter()
            .filter(|axes| !f.exclude.iter().any(|sel| axes.matches(sel))),
    );
    for (n, inc) in f.include.iter().enumerate() {
        let server = inc.server.clone().ok_or_else(|| {
            include_error(m, n, "server", "every [[include]] needs a `server`".into())
        })?;
        if let Some(v) = &inc.variant {
            if !variants.contains(&Some(v.clone())) {
                return Err(include_error(
                    m,
                    n,
                    "variant",
                    format!("unknown variant `{v}`"),
                ));
            }
        }
        // Include exists to add one-off combinations: any defined stack or settings will do,
        // not only those on the axes.
        for (table, key, value, defined) in [
            (
                "stacks",
                "stack",
                &inc.stack,
                f.stacks.contains_key(inc.stack.as_deref().unwrap_or("")),
            ),
            (
                "settings",
                "settings",
                &inc.settings,
                f.settings
                    .contains_key(inc.settings.as_deref().unwrap_or("")),
            ),
        ] {
            if let (Some(name), false) = (value, defined) {
                return Err(include_error(
                    m,
                    n,
                    key,
                    format!("`{name}` is not defined by any [{table}.\"{name}\"]"),
                ));
            }
        }
        let axes = CellAxes {
            server,
            persistence: inc.persistence.clone().unwrap_or_else(Persistence::none),
            runtime: inc.runtime.unwrap_or(RuntimeKind::Process),
            topology: inc.topology.unwrap_or_default(),
            transport: inc.transport.unwrap_or_default(),
            policy: inc.policy.clone(),
            stack: inc.stack.clone().or_else(|| stacks[0].clone()),
            settings: inc.settings.clone().or_else(|| settings[0].clone()),
            variant: inc.variant.clone(),
        };
        if !axes_list.contains(&axes) {
            axes_list.push(axes);
        }
    }

    let mut cells = Vec::new();
    for axes in axes_list {
        let mut params = m.scenario.clone();
        // Where a resolve error is reported: the variant that set the fields, else [scenario].
        let mut origin = (f.scenario.span().start, String::new());
        if let Some(label) = &axes.variant {
            let variant = f
                .axes
                .variant
                .iter()
                .find(|v| v.get_ref().label.as_ref() == Some(label))
                .expect("variant labels come from the axis");
            params = params.overlay(variant.get_ref());
            origin = (variant.span().start, format!("variant `{label}`: "));
        }
        let id = axes.id();
        let scenario = ScenarioConfig::resolve(&params)
            .map_err(|e| Error::input_at(&m.path, &m.text, origin.0, format!("{}{e}", origin.1)))?;
        let spec = ServerSpec {
            server: axes.server.clone(),
            persistence: axes.persistence.clone(),
            settings: ServerSettings {
                maxmemory_policy: axes
                    .policy
                    .clone()
                    .or_else(|| f.server.maxmemory_policy.clone()),
                ..f.server.clone()
            },
            mode: ServerMode::Server,
            secrets: None,
        };
        // Nodes of a topology find each other (and tell clients where the others are) by
        // 127.0.0.1 addresses: on a bridge network those would be each container's own.
        if !axes.topology.is_standalone()
            && axes.runtime == RuntimeKind::Container
            && f.runtime.container.network == crate::server::container::NetworkPath::Bridge
        {
            return Err(Error::input_file(
                &m.path,
                format!(
                    "cell {id}: topology `{}` runs its containers on the host network (nodes and \
                     clients reach each other at 127.0.0.1 addresses the servers hand out); \
                     `[runtime.container] network = \"bridge\"` supports standalone cells only",
                    axes.topology
                ),
            ));
        }
        // rolling-upgrade builds its own pair (`from` and `to` as its replica), which find each
        // other at 127.0.0.1 like a topology's nodes.
        if matches!(scenario, crate::scenario::ScenarioConfig::RollingUpgrade(_)) {
            let bridge = axes.runtime == RuntimeKind::Container
                && f.runtime.container.network == crate::server::container::NetworkPath::Bridge;
            if !axes.topology.is_standalone() || bridge {
                return Err(Error::input_file(
                    &m.path,
                    format!(
                        "cell {id}: rolling-upgrade attaches `to` as a replica of the cell's one \
                         server: it needs topology `standalone` and, on containers, the host \
                         network"
                    ),
                ));
            }
        }
        // An external server is loaded, never stopped or restarted: only load scenarios, on
        // one server of a real family.
        if f.target.server.is_some() {
            let kind = scenario.kind();
            let kind = kind.name();
            let why = if !matches!(kind, "cache-ops" | "login-flow") {
                Some(format!(
                    "scenario {kind} stops or restarts its server; on an external one (which \
                     cachegate did not start) only cache-ops and login-flow run"
                ))
            } else if !axes.topology.is_standalone() {
                Some(format!("topology `{}` starts several nodes", axes.topology))
            } else if axes.server.family == crate::server::Family::NoServer {
                Some("server `none` has no server to load".to_string())
            } else {
                None
            };
            if let Some(why) = why {
                let range =
                    crate::config::table_range(&m.text, "[target]", 0).unwrap_or(0..m.text.len());
                let offset = crate::config::key_offset(&m.text, range.clone(), "server")
                    .unwrap_or(range.start);
                return Err(Error::input_at(
                    &m.path,
                    &m.text,
                    offset,
                    format!("field `target.server`: cell {id}: {why}"),
                ));
            }
        }
        let auth = crate::scenario::fit::check_auth(
            &spec,
            axes.topology,
            axes.transport,
            axes.runtime,
            &scenario,
            f.target.server.is_some(),
        );
        if let Err(misfit) =
            auth.and_then(|()| crate::scenario::fit::check(&spec, axes.topology, &scenario))
        {
            return Err(misfit_error(m, &misfit, origin.0));
        }
        let expectation = f.expect.iter().rev().find(|e| axes.matches(&e.when));
        for repeat in 0..f.matrix.repeat {
            cells.push(Cell {
                matrix: f.matrix.name.clone(),
                id: id.clone(),
                axes: axes.clone(),
                repeat,
                spec: spec.clone(),
                scenario: scenario.clone(),
                expected: expectation.map_or(ExpectedOutcome::Pass, |e| e.verdict),
                expect_reason: expectation.and_then(|e| e.reason.clone()),
                expect_signature: expectation.and_then(|e| e.signature.clone()),
                stack: axes
                    .stack
                    .as_ref()
                    .map(|n| (n.clone(), f.stacks[n].clone())),
                stacks: f.stacks.clone().into_iter().collect(),
                app_settings: axes.settings.as_ref().map(|n| f.settings[n].clone()),
                settings: f.settings.clone(),
                target: f.target.clone(),
                container: f.runtime.container.clone(),
                gates: f.gates.clone(),
            });
        }
    }
    Ok(cells)
}

/// A cell that does not fit its server family, placed at the field that put it there: the key in
/// its table (`[axes]`, `[server]`), or the scenario table or variant that set it.
fn misfit_error(m: &LoadedMatrix, misfit: &crate::scenario::fit::Misfit, origin: usize) -> Error {
    let (table, key) = misfit.field.split_once('.').expect("fields are table.key");
    let range = match table {
        "axes" => crate::config::table_range(&m.text, "[axes]", 0),
        "server" => crate::config::table_range(&m.text, "[server]", 0),
        _ => Some(origin..m.text.len()),
    }
    .unwrap_or(origin..m.text.len());
    let offset = crate::config::key_offset(&m.text, range.clone(), key).unwrap_or(range.start);
    Error::input_at(
        &m.path,
        &m.text,
        offset,
        format!("field `{}`: {}", misfit.field, misfit.message),
    )
}

/// Every combination of `combos` with each of `values`, in order.
fn product<T>(
    combos: Vec<CellAxes>,
    values: &[T],
    set: impl Fn(&mut CellAxes, &T),
) -> Vec<CellAxes> {
    combos
        .into_iter()
        .flat_map(|c| {
            values
                .iter()
                .map(|v| {
                    let mut c = c.clone();
                    set(&mut c, v);
                    c
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Does the cell match every `--filter` term? A term is `axis=value` (e.g. `server=redis@7`,
/// matched like a selector) or a substring of the cell id.
pub fn filter_matches(cell: &Cell, terms: &[String]) -> Result<bool> {
    for term in terms {
        let hit = match term.split_once('=') {
            // The runtime is compared by name; like every other term it only narrows the match.
            Some(("runtime", value)) => cell.axes.runtime.name() == value,
            Some((key, value)) => {
                let mut sel = CellSelector::default();
                let bad = |e: String| Error::Usage(format!("--filter {term}: {e}"));
                match key {
                    "server" => sel.server = Some(value.parse().map_err(bad)?),
                    "persistence" => sel.persistence = Some(value.parse().map_err(bad)?),
                    "topology" => sel.topology = Some(value.parse().map_err(bad)?),
                    "transport" => sel.transport = Some(value.parse().map_err(bad)?),
                    "variant" => sel.variant = Some(value.to_string()),
                    "stack" => sel.stack = Some(value.to_string()),
                    "policy" => sel.policy = Some(value.to_string()),
                    "settings" => sel.settings = Some(value.to_string()),
                    other => {
                        return Err(Error::Usage(format!(
                            "--filter {term}: unknown axis `{other}` (server, persistence, runtime, topology, transport, policy, stack, settings, variant)"
                        )))
                    }
                }
                cell.axes.matches(&sel)
            }
            None => cell.id.contains(term.as_str()),
        };
        if !hit {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cells of a small matrix written to a temporary folder: two servers x two persistence modes.
    fn cells() -> Vec<Cell> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            r#"
[matrix]
name = "filters"
[axes]
server = ["redis@6.2", "redis@7.4"]
persistence = ["none", "rdb"]
[scenario]
kind = "cache-ops"
"#,
        )
        .unwrap();
        expand(&crate::config::load_matrix(&path).unwrap()).unwrap()
    }

    fn ids(terms: &[&str]) -> Vec<String> {
        let terms: Vec<String> = terms.iter().map(|t| t.to_string()).collect();
        cells()
            .into_iter()
            .filter(|c| filter_matches(c, &terms).unwrap())
            .map(|c| c.id)
            .collect()
    }

    #[test]
    fn every_filter_term_narrows_the_cells_including_after_runtime() {
        assert_eq!(
            ids(&["runtime=process", "server=redis@7"]),
            ["redis@7.4/none", "redis@7.4/rdb"]
        );
        assert_eq!(
            ids(&["server=redis@7", "runtime=process"]),
            ["redis@7.4/none", "redis@7.4/rdb"]
        );
        assert!(ids(&["runtime=container"]).is_empty());
        assert_eq!(ids(&["persistence=rdb", "6.2"]), ["redis@6.2/rdb"]);
    }

    #[test]
    fn topologies_expand_into_ids_filters_and_refuse_bridge_containers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        let body = |network: &str| {
            format!(
                "[matrix]\nname = \"t\"\n[axes]\nserver = [\"redis@7.4\"]\n\
                 runtime = [\"process\", \"container\"]\n\
                 topology = [\"standalone\", \"replica:2\", \"cluster:3:1\"]\n\
                 [runtime.container]\nnetwork = \"{network}\"\n[scenario]\nkind = \"cache-ops\"\n"
            )
        };
        std::fs::write(&path, body("host")).unwrap();
        let cells = expand(&crate::config::load_matrix(&path).unwrap()).unwrap();
        let ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "redis@7.4/none",
                "redis@7.4/none/replica:2",
                "redis@7.4/none/cluster:3:1",
                "redis@7.4/none/container",
                "redis@7.4/none/container/replica:2",
                "redis@7.4/none/container/cluster:3:1",
            ]
        );
        let picked: Vec<&str> = cells
            .iter()
            .filter(|c| {
                filter_matches(
                    c,
                    &["topology=replica:2".into(), "runtime=container".into()],
                )
                .unwrap()
            })
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(picked, ["redis@7.4/none/container/replica:2"]);
        std::fs::write(&path, body("bridge")).unwrap();
        let e = expand(&crate::config::load_matrix(&path).unwrap()).unwrap_err();
        assert!(e.to_string().contains("standalone cells only"), "{e}");
    }

    #[test]
    fn an_unknown_filter_axis_is_a_usage_error() {
        let cell = &cells()[0];
        let err = filter_matches(cell, &["colour=red".to_string()]).unwrap_err();
        assert!(err.to_string().contains("unknown axis `colour`"), "{err}");
    }
}
