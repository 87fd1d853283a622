//! The HTTP transport tries again, with a bounded backoff, exactly the vault requests that did
//! nothing (issue 11: "retries with bounded backoff"; spec 5.3): no connection, or `503` with
//! `no-leader`, `busy` or `storage`. A `503 unconfirmed` (the request may have been applied) is
//! never retried.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2ee_backup_client::{Error, HttpTransport, RetryPolicy, VaultTransport as _};

const FAST: RetryPolicy = RetryPolicy {
    attempts: 4,
    first_delay: Duration::from_millis(50),
    max_delay: Duration::from_millis(200),
};

/// Serves one canned answer per connection, in order; returns how many requests came.
fn serve(
    listener: TcpListener,
    answers: Vec<(u16, &'static str)>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut served = 0;
        for (status, body) in answers {
            let (stream, _) = listener.accept().expect("a connection");
            let mut reader = BufReader::new(stream.try_clone().expect("clones"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("a header line");
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().expect("a length");
                }
            }
            let mut request = vec![0; length];
            reader.read_exact(&mut request).expect("the body");
            served += 1;
            let kind = if status == 200 { "application/octet-stream" } else { "application/json" };
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .expect("written");
        }
        served
    })
}

fn transport(addr: SocketAddr, notices: &Arc<Mutex<Vec<(u32, u32)>>>) -> HttpTransport {
    let seen = notices.clone();
    HttpTransport::new(&format!("http://{addr}"))
        .expect("a transport")
        .with_retry(FAST, Some(Arc::new(move |n, of, _, _| seen.lock().unwrap().push((n, of)))))
}

const NO_LEADER: &str = r#"{"error":"no-leader","message":"nothing was done; retry"}"#;
const UNCONFIRMED: &str = r#"{"error":"unconfirmed","message":"may have been applied"}"#;

#[test]
fn a_request_the_vault_did_not_take_is_sent_again_and_succeeds() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(listener, vec![(503, NO_LEADER), (503, NO_LEADER), (200, "sealed")]);
    let notices = Arc::new(Mutex::new(Vec::new()));
    let answer = transport(addr, &notices).call(b"acct", b"envelope").expect("the third try");
    assert_eq!(answer, b"sealed");
    assert_eq!(server.join().unwrap(), 3);
    assert_eq!(*notices.lock().unwrap(), vec![(2, 4), (3, 4)]);
}

#[test]
fn a_request_that_may_have_been_applied_is_not_sent_again() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(listener, vec![(503, UNCONFIRMED)]);
    let notices = Arc::new(Mutex::new(Vec::new()));
    let error = transport(addr, &notices).call(b"acct", b"envelope").unwrap_err();
    assert!(matches!(error, Error::VaultUnreachable { .. }), "{error:?}");
    assert_eq!(server.join().unwrap(), 1, "one request only");
    assert!(notices.lock().unwrap().is_empty());
}

#[test]
fn no_connection_is_retried_within_the_bound_then_reported() {
    // A port nobody listens on.
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let notices = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let error = transport(addr, &notices).call(b"acct", b"envelope").unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(*notices.lock().unwrap(), vec![(2, 4), (3, 4), (4, 4)]);
    // 50 + 100 + 200 ms of waits, and no more tries than the policy allows.
    assert!(started.elapsed() >= Duration::from_millis(350));
}

#[test]
fn a_vault_that_comes_up_during_the_retries_is_reached() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(120));
        let listener = TcpListener::bind(addr).expect("the port is still free");
        serve(listener, vec![(200, "sealed")]).join().unwrap()
    });
    let notices = Arc::new(Mutex::new(Vec::new()));
    // Enough tries to outlast a slow start of the late listener on a loaded machine.
    let patient = RetryPolicy { attempts: 12, ..FAST };
    let seen = notices.clone();
    let mut http = HttpTransport::new(&format!("http://{addr}"))
        .expect("a transport")
        .with_retry(patient, Some(Arc::new(move |n, of, _, _| seen.lock().unwrap().push((n, of)))));
    let answer = http.call(b"acct", b"envelope").expect("reached");
    assert_eq!(answer, b"sealed");
    assert_eq!(late.join().unwrap(), 1);
    assert!(!notices.lock().unwrap().is_empty());
}
