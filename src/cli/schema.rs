//! `cachegate schema [matrix|scenario]`: the JSON Schema of the files cachegate reads, with the
//! scenario registry's kinds and the fields each kind reads.

use crate::config::schema::{self, KindFields};
use crate::exit_code;
use crate::scenario::KINDS;

/// Which file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaOf {
    Matrix,
    Scenario,
}

/// The schema's text, as checked in under `schemas/`.
pub fn text(of: SchemaOf) -> String {
    let kinds: Vec<KindFields> = KINDS
        .iter()
        .map(|k| KindFields {
            name: k.name,
            fields: k.fields,
        })
        .collect();
    let value = match of {
        SchemaOf::Matrix => schema::matrix(&kinds),
        SchemaOf::Scenario => schema::scenario(&kinds),
    };
    schema::to_text(&value)
}

pub fn run(of: SchemaOf) -> anyhow::Result<i32> {
    print!("{}", text(of));
    Ok(exit_code::OK)
}
