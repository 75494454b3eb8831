//! `cachegate images`: build and list the container images of the servers.

use anyhow::Context;

use super::args::ImagesCommand;
use crate::error::Error;
use crate::exit_code;
use crate::server::catalog::CATALOG;
use crate::server::provision::short_ref;
use crate::server::{container, image, Provisioner, ServerRef};

fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

pub fn run(command: ImagesCommand) -> anyhow::Result<i32> {
    let runtime = crate::load_runtime(1).context("starting the async runtime")?;
    runtime.block_on(async {
        let docker = container::connect().await?;
        match command {
            ImagesCommand::List => {
                let images = image::list_built(&docker)
                    .await
                    .map_err(anyhow::Error::msg)?;
                for (tag, id, size) in images {
                    println!("{tag:<28} {}  {:.1} MB", short_id(&id), size as f64 / 1e6);
                }
                Ok(exit_code::OK)
            }
            ImagesCommand::Build { servers } => {
                let provisioner = Provisioner::with_default_cache();
                let requests: Vec<ServerRef> = if servers.is_empty() {
                    CATALOG
                        .iter()
                        .filter(|e| provisioner.installed(e).is_some())
                        .map(|e| short_ref(e).parse().expect("catalog refs parse"))
                        .collect()
                } else {
                    servers
                        .iter()
                        .map(|s| s.parse().map_err(Error::Usage))
                        .collect::<Result<_, _>>()?
                };
                let mut code = exit_code::OK;
                for server in requests {
                    let built = match provisioner.provision(&server) {
                        Ok(p) => image::ensure_built(&docker, &p).await,
                        Err(e) => Err(e.to_string()),
                    };
                    match built {
                        Ok(i) => println!(
                            "{server}: {} {} ({})",
                            i.tag,
                            short_id(&i.id),
                            if i.built { "built" } else { "up to date" }
                        ),
                        Err(e) => {
                            eprintln!("error: {server}: {e}");
                            code = exit_code::INFRA;
                        }
                    }
                }
                Ok(code)
            }
        }
    })
}
