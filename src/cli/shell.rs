//! What the clap definition generates for a shell: completion scripts (`cachegate completions
//! SHELL`) and man pages (`cachegate man [SUBCOMMAND]`), so they never drift from the arguments.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;

use super::Cli;
use crate::error::Error;
use crate::exit_code;

/// The completion script for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "cachegate", &mut out);
    out.flush().context("writing the completion script")?;
    Ok(exit_code::OK)
}

/// The man page (roff) of cachegate, or of one subcommand (`cachegate-run(1)`), on stdout.
pub fn man(subcommand: Option<&str>) -> anyhow::Result<i32> {
    let page = man_page(subcommand)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page).context("writing the man page")?;
    Ok(exit_code::OK)
}

/// A man page's roff text.
pub fn man_page(subcommand: Option<&str>) -> crate::error::Result<Vec<u8>> {
    let root = Cli::command();
    let cmd = match subcommand {
        None => root,
        Some(name) => {
            let names: Vec<String> = root
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            let sub = root
                .get_subcommands()
                .find(|c| c.get_name() == name)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "no subcommand `{name}` (there are: {})",
                        names.join(", ")
                    ))
                })?;
            // `cachegate-run(1)`, as man pages of subcommands are named.
            sub.clone()
                .display_name(format!("cachegate-{name}"))
                .bin_name(format!("cachegate {name}"))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .source(concat!("cachegate ", env!("CARGO_PKG_VERSION")))
        .render(&mut page)
        .expect("rendering into memory does not fail");
    Ok(page)
}
