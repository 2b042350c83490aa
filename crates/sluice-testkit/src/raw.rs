//! A raw HTTP/1.1 receiver on 127.0.0.1: it reads each request and answers exactly the bytes a
//! test scripts — headers no library would send, bodies that never end or trickle, connections
//! closed mid-answer — to check a client survives what a hostile receiver does.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum RawAnswer {
    /// These bytes as they are (status line, headers, body), then the connection closes.
    Bytes(Vec<u8>),
    /// This head (status line and headers, without the blank line), then body bytes without end
    /// until the client goes away.
    Endless(String),
    /// This head, then one body byte every `interval` until the client goes away.
    Trickle(String, Duration),
    /// Read the request, answer nothing, close the connection.
    Close,
}

impl RawAnswer {
    /// A complete answer: `HTTP/1.1 {status} X`, the headers, `Content-Length` and the body.
    pub fn status(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Self {
        let mut out = head(status, headers).into_bytes();
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        RawAnswer::Bytes(out)
    }
}

/// A status line and headers (each ending in CRLF, no blank line) with `Connection: close`.
pub fn head(status: u16, headers: &[(&str, &str)]) -> String {
    let mut h = format!("HTTP/1.1 {status} Scripted\r\nConnection: close\r\n");
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h
}

#[derive(Default)]
struct Shared {
    script: VecDeque<RawAnswer>,
    requests: u64,
}

/// The receiver; stops accepting when dropped.
pub struct RawReceiver {
    addr: String,
    shared: Arc<Mutex<Shared>>,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RawReceiver {
    /// Starts on a free port of 127.0.0.1; answers `200` with an empty body unless scripted.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw receiver");
        let addr = format!("http://{}", listener.local_addr().expect("local addr"));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let written = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, wr, st) = (shared.clone(), written.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (sh, wr, st) = (sh.clone(), wr.clone(), st.clone());
                thread::spawn(move || serve(conn, &sh, &wr, &st));
            }
        });
        Self { addr, shared, written, stop }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.addr
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = RawAnswer>) {
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).script.extend(answers);
    }

    /// Requests read so far.
    pub fn requests(&self) -> u64 {
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).requests
    }

    /// Body bytes written so far by endless and trickling answers (what clients let through).
    pub fn body_bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

impl Drop for RawReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // wake the accept loop so it sees `stop`
        let _ = TcpStream::connect(self.addr.trim_start_matches("http://"));
    }
}

fn serve(conn: TcpStream, shared: &Mutex<Shared>, written: &AtomicU64, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut out) = conn.try_clone() else { return };
    let mut reader = BufReader::new(conn);
    // the request: head, then Content-Length bytes of body
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let _ = std::io::copy(&mut reader.by_ref().take(length as u64), &mut std::io::sink());
    let answer = {
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        s.requests += 1;
        s.script.pop_front().unwrap_or_else(|| RawAnswer::status(200, &[], b""))
    };
    let chunk = [b'x'; 8192];
    match answer {
        RawAnswer::Bytes(b) => {
            let _ = out.write_all(&b);
        }
        RawAnswer::Close => {}
        RawAnswer::Endless(h) => {
            if out.write_all(format!("{h}\r\n").as_bytes()).is_err() {
                return;
            }
            while !stop.load(Ordering::Relaxed) && out.write_all(&chunk).is_ok() {
                written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
        RawAnswer::Trickle(h, every) => {
            if out.write_all(format!("{h}\r\n").as_bytes()).is_err() {
                return;
            }
            while !stop.load(Ordering::Relaxed) && out.write_all(b"x").and_then(|_| out.flush()).is_ok() {
                written.fetch_add(1, Ordering::Relaxed);
                thread::sleep(every);
            }
        }
    }
    let _ = out.shutdown(std::net::Shutdown::Both);
}
