//! 20,000 idle sockets against the connection limit: they cannot lock the orchestrator's probes
//! or real clients out. Idle connections make room while the listener is full
//! (`--idle-timeout-when-full`), so a fresh connection is served again soon after the flood has
//! connected, while every one of its sockets is still held open by this test.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::json;
use tokio::{net::TcpStream, task::JoinSet};

use super::{fresh, kept_alive, BOUND};
use crate::common::spawn_tiny_with;

const SOCKETS: usize = 20_000;
/// Of those, held by a second process: one process may not have open files for them all (the
/// hard limit here is 20,000 and raising it needs `CAP_SYS_RESOURCE`).
const HELD_ELSEWHERE: usize = 10_000;
/// Connects in flight at once while flooding.
const WAVE: usize = 500;

/// Raises this process's open-file limit to hold the flood beside everything else the test
/// binary has open; returns how many sockets it may open (fewer where the limit cannot be raised).
fn room_for(sockets: usize) -> usize {
    let wanted = (sockets + 4096) as libc::rlim_t;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        if limit.rlim_cur < wanted {
            let raised = libc::rlimit {
                rlim_cur: wanted,
                rlim_max: limit.rlim_max.max(wanted),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                // Not allowed to raise the hard limit: go as high as it is.
                let soft = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
            }
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    let room = (limit.rlim_cur as usize).saturating_sub(4096).min(sockets);
    if room < sockets {
        eprintln!(
            "open-file limit {} holds only {room} of {sockets} idle sockets",
            limit.rlim_cur
        );
    }
    room
}

/// Opens `count` connections that never send a byte, `WAVE` at a time; keeps every one that
/// connected (the server closes most of them at once: they stay open on this side).
async fn flood(addr: std::net::SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    let mut failed = 0;
    while held.len() + failed < count {
        let wave = WAVE.min(count - held.len() - failed);
        let mut connects = JoinSet::new();
        for _ in 0..wave {
            connects.spawn(tokio::time::timeout(BOUND, TcpStream::connect(addr)));
        }
        while let Some(connected) = connects.join_next().await {
            match connected.unwrap() {
                Ok(Ok(stream)) => held.push(stream),
                _ => failed += 1,
            }
        }
    }
    assert!(
        failed * 20 < count,
        "{failed} of {count} connects failed: the flood did not happen"
    );
    held
}

/// A Python process holding `count` more idle connections until it is dropped.
struct Holder(Child);

const HOLD: &str = r#"
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = []
for _ in range(count):
    try:
        held.append(socket.create_connection((host, port), timeout=30))
    except OSError:
        pass
print(len(held), flush=True)
sys.stdin.read()
"#;

impl Holder {
    /// Starts it and waits until it holds its connections; returns how many connected.
    fn spawn(addr: std::net::SocketAddr, count: usize) -> (Self, usize) {
        let mut child = Command::new("python3")
            .args(["-c", HOLD, &addr.ip().to_string(), &addr.port().to_string()])
            .arg(count.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let held = line.trim().parse().expect("the holder reports its count");
        (Self(child), held)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn twenty_thousand_idle_sockets_do_not_lock_out_probes_or_clients() {
    let here = room_for(SOCKETS - HELD_ELSEWHERE);
    // The default `--idle-timeout` (75 s) is far past every bound below: only the listener
    // being full may close the idle sockets.
    let server = spawn_tiny_with(&["--max-connections", "256"]).await;
    // Idle keep-alives first, each served once, then sockets that never say anything.
    let kept = kept_alive(&server, 64).await;
    let started = std::time::Instant::now();
    let silent = flood(server.addr, here - kept.len()).await;
    let addr = server.addr;
    let (holder, elsewhere) =
        tokio::task::spawn_blocking(move || Holder::spawn(addr, HELD_ELSEWHERE))
            .await
            .unwrap();
    let open = kept.len() + silent.len() + elsewhere;
    eprintln!("{open} idle sockets open after {:?}", started.elapsed());
    assert!(
        open * 20 >= SOCKETS * 19,
        "only {open} of {SOCKETS} sockets connected: the flood did not happen"
    );

    let deadline = tokio::time::Instant::now() + BOUND;
    let mut tries = 0;
    let ready = loop {
        tries += 1;
        match fresh().get(server.url("/readyz")).send().await {
            Ok(r) if r.status() == 200 => break true,
            _ if tokio::time::Instant::now() > deadline => break false,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert!(
        ready,
        "/readyz never answered on a fresh connection in {tries} tries while {open} idle sockets were open"
    );
    eprintln!(
        "/readyz answered after {:?}, {tries} tries",
        started.elapsed()
    );
    let served = loop {
        let answer = fresh()
            .post(server.url("/infer"))
            .json(&json!({"inputs": "a client after the flood"}))
            .send()
            .await;
        match answer {
            Ok(r) if r.status() == 200 => break true,
            _ if tokio::time::Instant::now() > deadline => break false,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert!(
        served,
        "no /infer was served while the idle sockets were open"
    );
    // Everything above happened with the flood still connected on this side.
    drop((kept, silent, holder));
}
