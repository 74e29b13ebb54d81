//! A real PostgreSQL 16 with pgvector for the tests: the binaries the PyPI `pgserver` wheel
//! ships (installed into `.venv-pg/` by `scripts/test.sh`), started on a TCP port on
//! 127.0.0.1 in a temporary data directory, stoppable and restartable mid-test.
//!
//! PostgreSQL refuses to run as root; under root (CI) the server runs as the user
//! `inferd-pg` (which `scripts/test.sh` creates), from a copy of the binaries that user can read
//! when the checkout itself is private (e.g. under `/root`).

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

/// `bin` if `user` can run `bin/postgres`, else a copy of the whole install (its `lib/` and
/// `share/` beside `bin/`) in a world-readable temporary directory, named after the install's
/// `postgres` (size and mtime) so later runs reuse it.
fn runnable_by(user: &str, bin: PathBuf) -> PathBuf {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let can_run = |dir: &Path| {
        Command::new("runuser")
            .args(["-u", user, "--", "test", "-x"])
            .arg(dir.join("postgres"))
            .status()
            .is_ok_and(|s| s.success())
    };
    if can_run(&bin) {
        return bin;
    }
    COPY.get_or_init(|| {
        let install = bin.parent().expect("pginstall/bin has a parent");
        let meta = std::fs::metadata(bin.join("postgres")).unwrap();
        let stamp = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let to = std::env::temp_dir().join(format!("inferd-pginstall-{}-{stamp}", meta.len()));
        if can_run(&to.join("bin")) {
            return to.join("bin");
        }
        let _ = std::fs::remove_dir_all(&to);
        let status = Command::new("cp")
            .arg("-a")
            .arg(install)
            .arg(&to)
            .status()
            .unwrap();
        assert!(status.success(), "copying {} failed", install.display());
        let status = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&to)
            .status()
            .unwrap();
        assert!(status.success());
        let copy = to.join("bin");
        assert!(can_run(&copy), "{user} cannot run {}", copy.display());
        copy
    })
    .clone()
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
            assert!(
                exists,
                "PostgreSQL refuses to run as root, and the tests run it as the user {user}, which \
                 does not exist: scripts/test.sh creates it (useradd --system -M -s \
                 /usr/sbin/nologin {user})"
            );
            std::fs::create_dir(&data).unwrap();
            let chown = Command::new("chown")
                .args([user, data.to_str().unwrap(), dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let bin = match as_user {
            Some(user) => runnable_by(user, bin),
            None => bin,
        };
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
