//! A service address that can move: a TCP relay on 127.0.0.1 in front of a server, as a
//! Kubernetes Service, a DNS name or an HAProxy frontend stands in front of production Redis.
//! The app is configured with the relay's address; a switch-over points it at another server.
//! Connections opened after a switch go to the new server; the ones already open are closed, as
//! when the old server goes away, so the client's own reconnect logic is what is tested.
//!
//! Hand-written on tokio (`copy_bidirectional`) because it is a few lines: the switch with the
//! close of established connections is the part no proxy crate offers as a library.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Where new connections go, and the token that closes the connections made to it.
struct Route {
    backend: SocketAddr,
    generation: CancellationToken,
}

pub struct Relay {
    port: u16,
    route: Arc<Mutex<Route>>,
    /// Stops the accept loop and every connection (on drop too).
    stop: CancellationToken,
}

impl Relay {
    /// Listen on a free 127.0.0.1 port, relaying to `backend`.
    pub async fn start(backend: SocketAddr) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let stop = CancellationToken::new();
        let route = Arc::new(Mutex::new(Route {
            backend,
            generation: stop.child_token(),
        }));
        let accept_route = route.clone();
        let accept_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = accept_stop.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((client, _)) = accepted else { continue };
                let (backend, closed) = {
                    let r = accept_route.lock().expect("relay route lock");
                    (r.backend, r.generation.clone())
                };
                tokio::spawn(relay(client, backend, closed));
            }
        });
        Ok(Relay { port, route, stop })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Send new connections to `backend` and close the ones open now.
    pub fn switch_to(&self, backend: SocketAddr) {
        let mut r = self.route.lock().expect("relay route lock");
        r.generation.cancel();
        *r = Route {
            backend,
            generation: self.stop.child_token(),
        };
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One client connection, until either side closes it or its route is switched away.
async fn relay(mut client: TcpStream, backend: SocketAddr, closed: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(backend).await else {
        return; // the client sees the connection closed, as with a server that is down
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = closed.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An echo server that prefixes what it sends back with its name.
    async fn named_echo(name: &'static str) -> SocketAddr {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let mut out = name.as_bytes().to_vec();
                        out.extend_from_slice(&buf[..n]);
                        let _ = s.write_all(&out).await;
                    }
                });
            }
        });
        addr
    }

    async fn ask(conn: &mut TcpStream) -> Option<String> {
        conn.write_all(b"?").await.ok()?;
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).await.ok()?;
        (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[tokio::test]
    async fn a_switch_moves_new_connections_and_closes_open_ones() {
        let (a, b) = (named_echo("a").await, named_echo("b").await);
        let relay = Relay::start(a).await.unwrap();
        let mut old = TcpStream::connect(("127.0.0.1", relay.port()))
            .await
            .unwrap();
        assert_eq!(ask(&mut old).await.as_deref(), Some("a?"));
        relay.switch_to(b);
        assert_eq!(ask(&mut old).await, None, "the open connection is closed");
        let mut new = TcpStream::connect(("127.0.0.1", relay.port()))
            .await
            .unwrap();
        assert_eq!(ask(&mut new).await.as_deref(), Some("b?"));
        drop(relay);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            ask(&mut new).await,
            None,
            "dropping the relay closes everything"
        );
    }
}
