//! A TCP link to a peer over loopback that a test can cut and restore: a replica cut off from the API
//! server while the others still reach it (a network partition), without touching the server itself.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Link {
    pub addr: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Forwards connections made to `addr` to `upstream`, byte for byte (TLS passes through untouched).
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let (cut, _) = watch::channel(false);
        let cut = Arc::new(cut);
        let accept = tokio::spawn({
            let cut = cut.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if *cut.borrow() {
                        continue; // dropped: the connection is reset
                    }
                    let mut cut_now = cut.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut_now.wait_for(|cut| *cut) => {}
                        }
                    });
                }
            }
        });
        Ok(Self { addr, cut, accept })
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut.send_replace(true);
    }
}
