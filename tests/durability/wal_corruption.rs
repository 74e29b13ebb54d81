//! A damaged byte in the middle of a write-ahead log: the server refuses the index, naming the
//! file and the offset, and leaves the log as it found it; it never starts without the
//! acknowledged writes that follow the damage.

use std::time::Duration;

use super::{assert_state, put_all, serve_index, spawn_index, stop, Expected};
use crate::recommend::Fixture;

/// Byte offsets where each `[len u32][crc u32][payload]` record of `bytes` starts.
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        starts.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    starts
}

#[tokio::test]
async fn a_flipped_byte_mid_log_refuses_the_start_and_keeps_the_log() {
    let fx = Fixture::new(&[]);
    let index = fx.dir.path().join("index");
    let mut server = serve_index(&fx, &index).await;
    let mut expected = Expected::new();
    put_all(&server, &mut expected, (0..8).map(|i| format!("w-{i}"))).await;
    stop(&mut server).await;

    let wal = index.join("wal-1.log");
    let mut bytes = std::fs::read(&wal).unwrap();
    let starts = record_starts(&bytes);
    assert_eq!(starts.len(), 8);
    let damaged = starts[3];
    bytes[damaged + 20] ^= 0x01;
    std::fs::write(&wal, &bytes).unwrap();

    let mut refused = spawn_index(&fx, &index);
    assert!(
        !refused.wait_exit(Duration::from_secs(60)).await,
        "started on a damaged log"
    );
    let logs = refused.logs();
    assert!(
        logs.contains("wal-1.log") && logs.contains(&format!("byte {damaged}")),
        "the refusal must name the file and offset:\n{logs}"
    );
    assert_eq!(std::fs::read(&wal).unwrap(), bytes, "the log was changed");

    // Repaired from a backup (the byte flipped back), it starts with every write.
    bytes[damaged + 20] ^= 0x01;
    std::fs::write(&wal, &bytes).unwrap();
    let server = serve_index(&fx, &index).await;
    assert_state(&server, &expected, "a repair").await;
}
