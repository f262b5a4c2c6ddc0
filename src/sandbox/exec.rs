//! The HTTP side of `pods/exec`: the WebSocket upgrade and the Kubernetes channel protocol
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`): each binary message starts with a channel byte,
//! 0 stdin, 1 stdout, 2 stderr, 3 the final `Status` (with the exit code on failure), and in v5
//! `255, <channel>` closes a channel (the client closing stdin). The command itself runs in the
//! node agents ([`super::node::NodeAgents::exec`]).

use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::api::{ApiServer, Body, Query, node_error};
use super::resources;
use super::status::ApiError;

/// The channel protocols served, preferred first.
const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The protocol to speak, from the client's `Sec-WebSocket-Protocol` offers.
pub fn choose_protocol(offered: &str) -> Option<&'static str> {
    let offers: Vec<&str> = offered.split(',').map(str::trim).collect();
    PROTOCOLS.iter().copied().find(|p| offers.contains(p))
}

/// The Status sent on channel 3 when the command ends.
pub fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
    })
}

/// Serves `pods/<name>/exec`.
pub async fn exec(
    server: Arc<ApiServer>,
    req: Request<Incoming>,
    ns: &str,
    name: &str,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let pods = resources::find("", "v1", "pods").ok_or_else(ApiError::no_route)?;
    if server.store.get(pods.id(), ns, name).is_none() {
        return Err(ApiError::not_found(pods, name));
    }
    let header = |h: header::HeaderName| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let upgrade = header(header::UPGRADE);
    let key = header(header::SEC_WEBSOCKET_KEY);
    if !upgrade.eq_ignore_ascii_case("websocket") || key.is_empty() {
        return Err(ApiError::bad_request(
            "exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); SPDY is not served by the sandbox",
        ));
    }
    let protocol = choose_protocol(&header(header::SEC_WEBSOCKET_PROTOCOL)).ok_or_else(|| {
        ApiError::bad_request("none of the offered WebSocket protocols is served; use v5.channel.k8s.io or v4.channel.k8s.io")
    })?;
    let command = query.all("command");
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let flag = |k: &str| matches!(query.get(k), Some("true" | "1"));
    let agents = server.agents.get().ok_or_else(|| {
        ApiError::bad_request(format!("pod {name} has no kubelet in this sandbox"))
    })?;
    let session = agents
        .exec(
            ns,
            name,
            query.get("container"),
            command.clone(),
            flag("stdin"),
            flag("tty"),
        )
        .await
        .map_err(|e| node_error(&e))?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let stop = server.stop.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            () = pump(ws, session, command) => {}
            () = stop.cancelled() => {}
        }
    });
    let mut resp = Response::new(
        Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        header::HeaderValue::from_static(protocol),
    );
    Ok(resp)
}

async fn read_into<R: AsyncRead + Unpin>(mut r: R, channel: u8, tx: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf[1..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                buf[0] = channel;
                if tx
                    .send(Message::Binary(Bytes::copy_from_slice(&buf[..=n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

async fn pump<S>(ws: WebSocketStream<S>, session: super::node::ExecSession, command: Vec<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut incoming) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    let out = tokio::spawn(read_into(session.stdout, 1, tx.clone()));
    let err = tokio::spawn(read_into(session.stderr, 2, tx.clone()));
    let mut stdin = session.stdin;
    let exit = session.exit;
    let finisher = {
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = out.await;
            let _ = err.await;
            // A dropped sender means the pod was stopped under the command: SIGKILL's code.
            let code = exit.await.unwrap_or(137);
            let status = exit_status(&command, code);
            let mut frame = vec![3u8];
            frame.extend(serde_json::to_vec(&status).unwrap_or_default());
            let _ = tx.send(Message::Binary(Bytes::from(frame))).await;
            // A normal close (1000) ends every stream; a close without a code reads as an error.
            let _ = tx
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                })))
                .await;
        })
    };
    drop(tx);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(msg)) = incoming.next().await {
        match msg {
            Message::Binary(data) => match data.first() {
                Some(0) => {
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(&data[1..]).await.is_err() {
                            stdin = None;
                        } else {
                            let _ = w.flush().await;
                        }
                    }
                }
                Some(255) if data.get(1) == Some(&0) => {
                    if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
                _ => {}
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    drop(stdin);
    let _ = finisher.await;
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v5_is_preferred_and_v4_accepted() {
        assert_eq!(
            choose_protocol("v4.channel.k8s.io, v5.channel.k8s.io"),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(
            choose_protocol("v4.channel.k8s.io"),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(choose_protocol("base64.channel.k8s.io"), None);
    }

    #[test]
    fn a_failed_command_reports_its_exit_code() {
        let s = exit_status(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(exit_status(&[], 0)["status"], "Success");
    }
}
