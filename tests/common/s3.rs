//! An S3-compatible server for the remote-data tests (moto's `moto_server` on 127.0.0.1), and
//! `vista` run with the usual AWS variables pointing at it.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// An S3-compatible server on 127.0.0.1 (moto's `moto_server`), stopped when dropped.
pub struct S3Server {
    child: std::process::Child,
    pub port: u16,
}

impl S3Server {
    /// Starts `moto_server`; `None` where it is not installed, unless `VISTA_REQUIRE_S3` is set
    /// (CI sets it: there the remote-data test must run).
    pub fn start() -> Option<S3Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let spawned = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) if std::env::var_os("VISTA_REQUIRE_S3").is_none() => {
                eprintln!("skipped: moto_server cannot start ({e}); pip install 'moto[server]'");
                return None;
            }
            Err(e) => panic!("VISTA_REQUIRE_S3 is set but moto_server cannot start: {e}"),
        };
        let server = S3Server { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(server)
    }

    /// An unsigned `PUT path` (moto accepts unsigned requests): a bucket, or an object anyone
    /// may read (plain HTTP GETs read it too).
    pub fn put(&self, path: &str, body: &[u8]) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nx-amz-acl: public-read\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "PUT {path}: {reply}");
    }

    /// The usual AWS variables, pointing at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// `vista` with [`S3Server::env`].
    pub fn vista(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vista"))
            .args(args)
            .current_dir(dir)
            .env("HOME", dir)
            .envs(self.env())
            .output()
            .expect("vista runs")
    }

    pub fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.vista(dir, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "vista {args:?} failed: {err}");
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
