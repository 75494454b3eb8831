//! JSON Schema of matrix and scenario files, generated (schemars) from the same types that parse
//! them, so an editor's TOML language server validates and completes what `check` would. The
//! checked-in `schemas/*.schema.json` are this output (`cachegate schema matrix|scenario`); a
//! fast test fails when they are stale.
//!
//! What the serde attributes alone do not say is added from the sources the parser uses:
//! values parsed from strings (`redis@7.4`, `rdb+aof-everysec`, `< 2ms`, `30s`) carry a pattern
//! next to their `FromStr`; the scenario kinds and the fields each kind reads come from the
//! scenario registry (passed in, since config sits below it); and the three places scenario
//! fields are written (a scenario file, a matrix's `[scenario]`, `[[axes.variant]]`) each refuse
//! what the loader refuses there.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::{json, Value};

use super::{MatrixFile, ScenarioParams};

/// A scenario kind as the registry knows it: its name and the fields it reads besides
/// `ScenarioParams::ANY_KIND`.
pub struct KindFields<'a> {
    pub name: &'a str,
    pub fields: &'a [&'a str],
}

/// A string with the grammar its `FromStr` accepts, for the types parsed from strings.
pub fn pattern_string(pattern: &str, description: &str) -> Schema {
    schemars::json_schema!({
        "type": "string",
        "pattern": pattern,
        "description": description,
    })
}

/// The root schema of `T` in draft-07, the draft TOML language servers (taplo, Even Better
/// TOML) read; its `$ref`s point into `#/definitions`.
fn root_schema<T: JsonSchema>(title: &str) -> Value {
    let mut schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    schema["title"] = json!(title);
    drop_null(&mut schema);
    schema
}

/// TOML has no null: an optional field is written or left out. schemars says "or null" for every
/// `Option` (and `null` defaults); take that out so editors offer only what a file can hold.
fn drop_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if let [one] = types.as_slice() {
                    let one = one.clone();
                    map.insert("type".into(), one);
                }
            }
            if let Some(Value::Array(any)) = map.get("anyOf") {
                let kept: Vec<Value> = any
                    .iter()
                    .filter(|s| s.get("type").is_none_or(|t| t != "null"))
                    .cloned()
                    .collect();
                map.remove("anyOf");
                match kept.as_slice() {
                    // `anyOf: [X, null]` is X; a reference beside other keywords goes in an
                    // `allOf`, since draft-07 ignores the siblings of a `$ref`.
                    [one] if one.get("$ref").is_some() && !map.is_empty() => {
                        map.insert("allOf".into(), json!([one]));
                    }
                    [one] => {
                        for (k, v) in one.as_object().cloned().unwrap_or_default() {
                            map.entry(k).or_insert(v);
                        }
                    }
                    _ => {
                        map.insert("anyOf".into(), Value::Array(kept));
                    }
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(drop_null);
        }
        _ => {}
    }
}

/// The schema of matrix files (`matrices/*.toml`).
pub fn matrix(kinds: &[KindFields]) -> Value {
    let mut schema = root_schema::<MatrixFile>("cachegate matrix file");
    let defs = schema["definitions"]
        .as_object_mut()
        .expect("the root schema has definitions");
    let params = defs
        .remove("ScenarioParams")
        .expect("ScenarioParams is a definition");
    // Replaced by the registry's kinds in each place `kind` is written.
    defs.remove("ScenarioKind");
    // `[scenario]`: every field but `label`, which names a variant.
    defs.insert(
        "MatrixScenario".into(),
        restricted(&params, &["label"], &[], kinds),
    );
    // `[[axes.variant]]`: a label, and no `use` or `kind` (a variant only overrides fields).
    defs.insert(
        "Variant".into(),
        restricted(&params, &["use", "kind"], &["label"], kinds),
    );
    point_at(
        &mut defs["Axes"]["properties"]["variant"]["items"],
        "Variant",
    );
    point_at(&mut schema["properties"]["scenario"], "MatrixScenario");
    schema
}

/// The schema of scenario files (`scenarios/*.toml`): no `use` or `label`, which belong in
/// matrix files.
pub fn scenario(kinds: &[KindFields]) -> Value {
    let root = root_schema::<ScenarioParams>("cachegate scenario file");
    let mut schema = restricted(&root, &["use", "label"], &[], kinds);
    if let Some(defs) = schema["definitions"].as_object_mut() {
        defs.remove("ScenarioKind");
    }
    schema
}

/// `params` without the properties `remove`, with `require` required, `kind` one of the
/// registry's kinds, and the fields a kind does not read refused when `kind` is written here
/// (`ScenarioParams::check_applicable`; a kind that comes from a `use`d file is not seen here).
fn restricted(params: &Value, remove: &[&str], require: &[&str], kinds: &[KindFields]) -> Value {
    let mut out = params.clone();
    let props = out["properties"]
        .as_object_mut()
        .expect("ScenarioParams has properties");
    for field in remove {
        props.remove(*field);
    }
    let present: Vec<String> = props.keys().cloned().collect();
    if let Some(kind) = props.get_mut("kind") {
        let names: Vec<&str> = kinds.iter().map(|k| k.name).collect();
        *kind = json!({
            "description": kind.get("description").cloned().unwrap_or_default(),
            "enum": names,
        });
        let per_kind: Vec<Value> = kinds
            .iter()
            .map(|k| {
                let allowed: Vec<&str> = present
                    .iter()
                    .map(String::as_str)
                    .filter(|f| {
                        *f == "kind"
                            || *f == "use"
                            || k.fields.contains(f)
                            || ScenarioParams::ANY_KIND.contains(f)
                    })
                    .collect();
                json!({
                    "if": { "properties": { "kind": { "const": k.name } }, "required": ["kind"] },
                    "then": { "propertyNames": { "enum": allowed } },
                })
            })
            .collect();
        out["allOf"] = Value::Array(per_kind);
    }
    if !require.is_empty() {
        out["required"] = json!(require);
    }
    out
}

/// Make a property a reference to a definition, keeping its description. Draft-07 ignores the
/// siblings of a `$ref`, so the reference goes in an `allOf` (as schemars does for draft-07).
fn point_at(property: &mut Value, definition: &str) {
    let reference = json!({ "$ref": format!("#/definitions/{definition}") });
    *property = match property.get("description").cloned() {
        Some(d) => json!({ "allOf": [reference], "description": d }),
        None => reference,
    };
}

/// Pretty JSON with a final newline, as checked in.
pub fn to_text(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema serializes");
    text.push('\n');
    text
}
