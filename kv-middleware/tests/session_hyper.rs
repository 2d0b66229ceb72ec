//! The session layer on a plain hyper server with a tower `service_fn`: no axum anywhere, a
//! real TCP connection on the loopback interface.
#![cfg(feature = "session")]

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{COOKIE, HOST, SET_COOKIE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kv_backends::memory::MemoryBackend;
use kv_core::Store;
use kv_middleware::session::{Session, SessionLayer};
use tokio::net::{TcpListener, TcpStream};
use tower::{ServiceBuilder, ServiceExt};

/// Counts visits in the session; `/logout` destroys it.
async fn handler(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        let mut response = Response::new(Full::from("no session layer"));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return Ok(response);
    };
    let result = async {
        if request.uri().path() == "/logout" {
            session.destroy().await?;
            return Ok("bye".to_owned());
        }
        let visits = session.get::<u64>("visits").await?.unwrap_or(0) + 1;
        session.insert("visits", visits).await?;
        Ok::<_, kv_middleware::session::SessionError>(visits.to_string())
    };
    Ok(match result.await {
        Ok(body) => Response::new(Full::from(body)),
        Err(_) => {
            let mut response = Response::new(Full::default());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    })
}

async fn get(
    addr: std::net::SocketAddr,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = Request::get(path).header(HOST, "localhost");
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = sender
        .send_request(request.body(Empty::<Bytes>::new()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let set_cookie = response
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().expect("ASCII").to_owned());
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        set_cookie,
        String::from_utf8(body.to_vec()).expect("UTF-8"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_hyper_server_without_axum() {
    let store = Store::new(MemoryBackend::new());
    let layer = SessionLayer::new(store.namespace("SESSIONS").await.expect("namespace"));
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(handler);

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request| service.clone().oneshot(request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let (status, set_cookie, body) = get(addr, "/", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
    let set_cookie = set_cookie.expect("the new session's cookie");
    assert!(set_cookie.starts_with("session="), "{set_cookie}");
    let pair = set_cookie.split(';').next().unwrap().to_owned();

    let (_, again, body) = get(addr, "/", Some(&pair)).await;
    assert_eq!(body, "2");
    // A write extends the rolling expiry, so the same cookie comes back with a new Max-Age.
    assert!(again
        .expect("renewed cookie")
        .starts_with(&format!("{pair};")));

    let (_, removal, body) = get(addr, "/logout", Some(&pair)).await;
    assert_eq!(body, "bye");
    assert!(removal.expect("removal cookie").contains("Max-Age=0"));
    let (_, _, body) = get(addr, "/", Some(&pair)).await;
    assert_eq!(body, "1", "the old ID no longer works");
    assert_eq!(layer.stats().writes, 3);

    server.abort();
}
