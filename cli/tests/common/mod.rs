//! A `nanorun serve` child process for the CLI's HTTP tests, killed on drop, and raw HTTP/1.1
//! requests to it.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A running server, killed on drop.
pub struct Server {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    timeout: Duration,
}

impl Server {
    /// `nanorun serve -m MODEL --port 0 -t 2 EXTRA…` on 127.0.0.1; requests give up after
    /// `timeout` without a byte.
    pub fn start(model: &Path, extra: &[&str], timeout: Duration) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nanorun"))
            .args(["serve", "-m"])
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", "0", "-t", "2"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nanorun serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("serving"))
            .expect("server printed its address");
        let port = line
            .rsplit_once("127.0.0.1:")
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            port,
            timeout,
        }
    }

    /// The OpenAI base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// One request: (status, response head, raw body).
    fn exchange(&self, method: &str, path: &str, body: &str) -> (u16, String, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(self.timeout)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = raw.split_once("\r\n\r\n").expect("HTTP response");
        (
            head[9..12].parse().unwrap(),
            head.to_string(),
            rest.to_string(),
        )
    }

    /// One request; returns (status, body). Chunked bodies are de-chunked.
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let (status, head, rest) = self.exchange(method, path, body);
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            (status, dechunk(&rest))
        } else {
            (status, rest)
        }
    }

    /// One request whose response must be a plain (not chunked) JSON body.
    pub fn request_json(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let (status, head, rest) = self.exchange(method, path, body);
        assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
        let v = serde_json::from_str(&rest).unwrap_or_else(|e| panic!("{e}: {rest}"));
        (status, v)
    }

    /// POST `body` as JSON to `path`; the (de-chunked) response as JSON.
    pub fn json(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, text) = self.request("POST", path, &body.to_string());
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, v)
    }

    /// The value of `nanorun_NAME` on `/metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        let (_, text) = self.request("GET", "/metrics", "");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("nanorun_{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The payload of an HTTP chunked body.
pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
