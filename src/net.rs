//! Loopback ports. Everything the harness starts listens on 127.0.0.1 only.

use crate::error::{Error, Result};

/// A free TCP port on 127.0.0.1, as the OS hands it out. Another process may take it before the
/// caller binds it; callers that start servers retry on "Address already in use".
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("finding a free port", e))?;
    Ok(listener
        .local_addr()
        .map_err(|e| Error::io("finding a free port", e))?
        .port())
}
