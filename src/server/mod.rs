//! Servers: what to run (`spec`), where binaries come from (`catalog`, `provision`), and how
//! they run (`runtime`: the seam; `process`, `container`; `image` builds container images).

pub mod acl;
pub mod catalog;
pub mod container;
pub mod control;
pub mod debian;
pub mod deployment;
pub mod external;
pub mod image;
pub mod no_server;
pub mod process;
pub mod provision;
pub mod runtime;
pub mod spec;
pub mod tls;
pub mod topology;

pub use deployment::{Deployment, Node, NodeStarter, Role};
pub use process::ServerProcess;
pub use provision::{ProvisionedServer, Provisioner};
pub use runtime::{Endpoint, RunningServer, RuntimeIdentity, StopKind};
pub use spec::{
    Family, Fsync, Persistence, Protocol, ServerMode, ServerRef, ServerSettings, ServerSpec,
};
pub use topology::Topology;
