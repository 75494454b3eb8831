//! Servers: what to run (`spec`), where binaries come from (`catalog`, `provision`), and how
//! they run (`process`; containers plug in beside it).

pub mod catalog;
pub mod process;
pub mod provision;
pub mod spec;

pub use process::{ServerProcess, StopKind};
pub use provision::{ProvisionedServer, Provisioner};
pub use spec::{Family, Fsync, Persistence, ServerRef, ServerSettings, ServerSpec};
