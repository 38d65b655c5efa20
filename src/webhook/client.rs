//! One webhook POST: a fresh connection (TLS for https, with the Mozilla roots of
//! `webpki-roots`), the body, the status, and everything within the webhook's timeout. A
//! receiver that hangs costs its delivery task a timeout, never anything else.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Uri};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// What one attempt came to: the receiver's status, or why there was none.
pub type Outcome = Result<u16, String>;

fn tls() -> Result<tokio_rustls::TlsConnector, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| e.to_string())
    });
    config.clone().map(tokio_rustls::TlsConnector::from)
}

/// POSTs `body` to `url` with the given extra headers.
pub async fn post(
    url: &Uri,
    headers: &[(&'static str, String)],
    body: Bytes,
    timeout: Duration,
) -> Outcome {
    tokio::time::timeout(timeout, send(url, headers, body))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs_f64())))
}

async fn send(url: &Uri, headers: &[(&'static str, String)], body: Bytes) -> Outcome {
    let host = url.host().ok_or("the URL has no host")?;
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((bare, port))
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut req = Request::post(url.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, url.authority().map_or(host, |a| a.as_str()))
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("spoor/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    if https {
        let name = rustls::pki_types::ServerName::try_from(bare.to_owned())
            .map_err(|e| format!("TLS name: {e}"))?;
        let stream = tls()?
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(TokioIo::new(stream), req).await
    } else {
        exchange(TokioIo::new(tcp), req).await
    }
}

async fn exchange<T>(io: T, req: Request<Full<Bytes>>) -> Outcome
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(conn);
    let answer = sender.send_request(req).await;
    driver.abort();
    answer
        .map(|res| res.status().as_u16())
        .map_err(|e| format!("HTTP: {e}"))
}
