//! A real PostgreSQL 16 with pgvector for the tests: the binaries the PyPI `pgserver` wheel
//! ships (installed into `.venv-pg/` by `scripts/test.sh`), started on a TCP port on
//! 127.0.0.1 in a temporary data directory, stoppable and restartable mid-test.
//!
//! PostgreSQL refuses to run as root; under root (CI) the server runs as the user
//! `inferd-pg`, created on first use.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
};

const USER: &str = "inferd-pg";

pub struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_user: Option<&'static str>,
    _dir: tempfile::TempDir,
}

/// The pgserver wheel's `bin/` (or `INFERD_TEST_PG_BIN`).
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("INFERD_TEST_PG_BIN") {
        return dir.into();
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-pg/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path().join("site-packages/pgserver/pginstall/bin"))
            .find(|p| p.join("postgres").exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "PostgreSQL tests need the pgserver wheel in .venv-pg (scripts/test.sh installs it: \
             python3 -m venv .venv-pg && .venv-pg/bin/pip install -r tests/pgvector/requirements.txt) \
             or INFERD_TEST_PG_BIN; none under {}",
            lib.display()
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgServer {
    /// initdb + start; panics with the server log when it cannot start.
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let as_user = is_root().then_some(USER);
        if let Some(user) = as_user {
            let exists = Command::new("id")
                .arg(user)
                .output()
                .unwrap()
                .status
                .success();
            if !exists {
                let status = Command::new("useradd")
                    .args(["-M", "-s", "/usr/sbin/nologin", user])
                    .status()
                    .unwrap();
                // Another test may have created it at the same moment.
                assert!(
                    status.success() || Command::new("id").arg(user).status().unwrap().success()
                );
            }
            std::fs::create_dir(&data).unwrap();
            let chown = Command::new("chown")
                .args([user, data.to_str().unwrap(), dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let server = Self {
            bin,
            data,
            port: free_port(),
            as_user,
            _dir: dir,
        };
        server.run(
            "initdb",
            &[
                "-D",
                server.data_str(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        server.resume();
        server
    }

    fn data_str(&self) -> &str {
        self.data.to_str().unwrap()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.data.join("log")).unwrap_or_default()
        );
    }

    /// `postgresql://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", self.data_str(), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts (again) on the same port and data.
    pub fn resume(&self) {
        let opts = format!("-h 127.0.0.1 -p {} -k {}", self.port, self.data_str());
        let log = self.data.join("log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data_str(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", self.data_str(), "-m", "immediate", "-w", "stop"];
        let _ = match self.as_user {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&exe)
                .args(args)
                .output(),
            None => Command::new(&exe).args(args).output(),
        };
    }
}
