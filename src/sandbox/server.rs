//! Serving the API: HTTP/1.1 on a loopback TCP listener, and the same service in-process over
//! in-memory duplex pipes so that a `kube::Client` gets full HTTP semantics (including the
//! connection upgrade exec needs) with no socket.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::api::ApiServer;

/// Serves one connection (TCP or in-memory) until it closes or the server stops.
async fn serve_connection<I>(server: Arc<ApiServer>, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let stop = server.stop.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let server = Arc::clone(&server);
        async move { Ok::<_, std::convert::Infallible>(server.handle(req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), conn).await;
        }
    }
}

/// Accepts connections on an already bound listener until the server stops.
pub fn serve_listener(server: Arc<ApiServer>, listener: TcpListener) {
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = server.stop.cancelled() => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(Arc::clone(&server), stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sandbox: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
}

/// Binds 127.0.0.1:`port` (0: any free port).
pub async fn bind(port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// The in-process transport: one in-memory HTTP/1.1 connection per request.
#[derive(Clone)]
pub struct InProcess {
    server: Arc<ApiServer>,
}

impl InProcess {
    /// A transport to `server`.
    pub fn new(server: Arc<ApiServer>) -> InProcess {
        InProcess { server }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Request<kube::client::Body>> for InProcess {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let server = Arc::clone(&self.server);
        Box::pin(async move {
            let (client_io, server_io) = tokio::io::duplex(256 * 1024);
            tokio::spawn(serve_connection(server, server_io));
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(client_io)).await?;
            tokio::spawn(async move {
                let _ = conn.with_upgrades().await;
            });
            let (parts, body) = req.into_parts();
            let body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync();
            let mut req = Request::from_parts(parts, body);
            if !req.headers().contains_key(http::header::HOST) {
                req.headers_mut().insert(
                    http::header::HOST,
                    http::HeaderValue::from_static("lpp-sandbox"),
                );
            }
            Ok(sender.send_request(req).await?)
        })
    }
}
