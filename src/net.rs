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

/// A free port P on 127.0.0.1 whose companion P + `offset` is free too: a cluster node's bus
/// listens on port + 10000 (Redis before 7.0 has no setting to move it), so P must stay below
/// 55536 and both must be free. Picked at random below the OS's ephemeral range.
pub fn free_port_with_companion(offset: u16) -> Result<u16> {
    use rand::Rng;
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    let mut rng = rand::rng();
    for _ in 0..200 {
        let p: u16 = rng.random_range(20000..=(32000u16.min(u16::MAX - offset)));
        if free(p) && free(p + offset) {
            return Ok(p);
        }
    }
    Err(Error::io(
        "finding a free port pair",
        std::io::Error::new(std::io::ErrorKind::AddrInUse, "200 random tries failed"),
    ))
}

/// The port a server should listen on: a plain free port, or one with its cluster bus port
/// (port + 10000) free as well.
pub fn free_server_port(cluster_bus: bool) -> Result<u16> {
    if cluster_bus {
        free_port_with_companion(CLUSTER_BUS_OFFSET)
    } else {
        free_port()
    }
}

/// A Redis Cluster node's bus port is its port plus this.
pub const CLUSTER_BUS_OFFSET: u16 = 10000;
